"""DG_REPLICATION_FACTOR=-1 (the default) on a real broker: our topics are created with -1
(KIP-464) and the worker's Faust changelogs with the number the broker reports."""
from __future__ import annotations

from confluent_kafka.admin import AdminClient

from distillguard.devtools.demo_traffic import demo_events, iter_encoded
from distillguard.streams.topics import broker_default_replication_factor


def _replicas(admin: AdminClient, topic: str) -> set[int]:
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    assert metadata.error is None and metadata.partitions, topic
    return {len(p.replicas) for p in metadata.partitions.values()}


def test_default_replication_creates_every_topic_and_changelog_with_the_brokers_factor(pipeline):
    config = {"bootstrap.servers": pipeline.broker.bootstrap}
    factor = broker_default_replication_factor(config)
    assert factor >= 1
    admin = AdminClient(config)
    assert _replicas(admin, pipeline.settings.requests_topic) == {factor}  # created with -1
    worker = pipeline.start_worker(DG_REPLICATION_FACTOR="-1")
    records = list(iter_encoded(demo_events(seed=3, users=5, campaign_events=0, hours=1)))[:200]
    pipeline.produce(records)
    pipeline.wait_processed(worker, len(records))
    assert _replicas(admin, f"{pipeline.settings.app_id}-key-state-changelog") == {factor}
