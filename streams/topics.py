"""Create the pipeline's topics up front, with the partition count we want.

Auto-created topics get the broker's default partition count (4 on the embedded brokers),
and the Faust tables are co-partitioned with ``llm.requests``, so both must agree.
"""
from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient, NewTopic

from .settings import WorkerSettings

log = logging.getLogger(__name__)


def pipeline_topics(settings: WorkerSettings) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name -> (partitions, topic config), for every topic the workers read or write."""
    topics = {
        settings.requests_topic: (settings.partitions, {}),
        settings.dlq_topic: (settings.partitions, {}),
        settings.alerts_topic: (settings.partitions, {}),
        settings.links_topic: (1, {"retention.ms": str(settings.links_retention_ms)}),
    }
    if settings.link_values_partitioned:
        topics[settings.link_values_topic] = (settings.partitions, {"retention.ms": str(settings.links_retention_ms)})
    return topics


def ensure_topics(settings: WorkerSettings, timeout: float = 15.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left alone."""
    admin = AdminClient(settings.confluent_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)
              for name, (partitions, config) in pipeline_topics(settings).items() if name not in existing]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise
    log.info("created topics %s", created)
    return created
