"""Create the pipeline's topics up front, with the partition count we want.

Auto-created topics get the broker's default partition count (4 on the embedded brokers),
and the Faust tables are co-partitioned with ``llm.requests``, so both must agree.

Every topic is created with ``DG_REPLICATION_FACTOR`` replicas. Its default, -1, asks for the
broker's ``default.replication.factor`` (KIP-464): confluent-kafka passes -1 on, but Faust
(CreateTopics v1, unsigned setting) needs the number, so :func:`resolved_replication_factor`
reads it from the broker's config for Faust's changelog topics.
"""
from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from .settings import KafkaSettings, WorkerSettings

log = logging.getLogger(__name__)


def pipeline_topics(settings: WorkerSettings) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name -> (partitions, topic config), for every topic the workers read or write."""
    topics = {
        settings.requests_topic: (settings.partitions, {}),
        settings.input_topic: (settings.partitions, {}),  # the packed topic with DG_READ_PACKED
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
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=settings.replication_factor, config=config)
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


# Neither the broker's config nor a topic created with -1 says: what Kafka itself defaults to.
KAFKA_DEFAULT_REPLICATION_FACTOR = 1


def broker_default_replication_factor(config: dict[str, str], timeout: float = 15.0,
                                      created_with_default: str | None = None) -> int:
    """The ``default.replication.factor`` of the cluster at ``config`` (librdkafka settings).

    Read from a broker's config; where that is not allowed (a managed Kafka's ACLs often deny
    DescribeConfigs), the replica count of ``created_with_default``, a topic we created with
    -1, i.e. with that default; else 1. Raises ``KafkaException`` when the cluster cannot be reached.
    """
    admin = AdminClient(config)
    metadata = admin.list_topics(timeout=timeout)
    resource = ConfigResource(ConfigResource.Type.BROKER, str(min(metadata.brokers)))
    try:
        entry = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout).get(
            "default.replication.factor")
        if entry is not None and str(entry.value or "").isdigit() and int(entry.value) > 0:
            return int(entry.value)
    except KafkaException as exc:  # e.g. an ACL without DescribeConfigs, or a broker without the API
        log.warning("broker config not readable (%s)", exc)
    topic = metadata.topics.get(created_with_default) if created_with_default else None
    if topic is not None and topic.partitions:
        return max(len(partition.replicas) for partition in topic.partitions.values())
    return KAFKA_DEFAULT_REPLICATION_FACTOR


def resolved_replication_factor(settings: KafkaSettings, probe_topic: str, timeout: float = 15.0) -> int:
    """``DG_REPLICATION_FACTOR`` as a positive number: -1 is looked up on the broker (or in
    ``probe_topic``, a topic created with -1)."""
    if settings.replication_factor > 0:
        return settings.replication_factor
    return broker_default_replication_factor(settings.confluent_config(), timeout,
                                             created_with_default=probe_topic)


def resolve_replication_on_start(app, settings: KafkaSettings, probe_topic: str) -> None:
    """Give a Faust ``app`` configured with ``DG_REPLICATION_FACTOR=-1`` the broker's number
    when it starts, before it declares any topic (its tables' changelogs, its leader topic).

    At start, not when the app is built: building an app (tests, ``--help``) must not wait
    on a broker. The lookup runs in a thread: librdkafka calls block.
    """
    if settings.replication_factor > 0:
        return
    first_start = app.on_first_start

    async def on_first_start() -> None:
        import asyncio

        factor = await asyncio.to_thread(resolved_replication_factor, settings, probe_topic)
        app.conf.topic_replication_factor = factor
        log.info("topics are created with the broker's default replication factor: %d", factor)
        await first_start()

    app.on_first_start = on_first_start
