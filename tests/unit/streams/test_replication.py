"""DG_REPLICATION_FACTOR and DG_TABLE_STANDBY_REPLICAS reach every topic and table we create:
the pipeline's topics, the router's topics, and the Faust apps (their changelogs and standbys)."""
from __future__ import annotations

import asyncio
from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaException

from distillguard.streams import feedback_follower, topics
from distillguard.streams.router import RouterSettings, router_topics
from distillguard.streams.settings import WorkerSettings


class NoSink:
    client = None


class RecordingAdmin:
    """Stands in for confluent-kafka's AdminClient: no topic exists, every creation succeeds."""

    created: list = []

    def __init__(self, config):
        self.config = config

    def list_topics(self, timeout=None):
        return type("Metadata", (), {"topics": {}, "brokers": {1: None}})()

    def create_topics(self, new_topics, operation_timeout=None):
        RecordingAdmin.created += new_topics
        done = Future()
        done.set_result(None)
        return {t.topic: done for t in new_topics}


@pytest.fixture
def admin(monkeypatch):
    import confluent_kafka.admin

    RecordingAdmin.created = []
    monkeypatch.setattr(topics, "AdminClient", RecordingAdmin)
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", RecordingAdmin)  # router_topics imports it late
    return RecordingAdmin


def _worker_app(monkeypatch, tmp_path):
    from distillguard.streams.app import worker_app

    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    return worker_app(WorkerSettings(), pipeline=object(), sink=NoSink())


def test_the_default_is_the_brokers_replication_factor_and_no_standby(monkeypatch):
    for name in ("DG_REPLICATION_FACTOR", "DG_TABLE_STANDBY_REPLICAS"):
        monkeypatch.delenv(name, raising=False)
    assert (WorkerSettings().replication_factor, WorkerSettings().table_standby_replicas) == (-1, 0)
    monkeypatch.setenv("DG_REPLICATION_FACTOR", "0")
    with pytest.raises(ValueError, match="DG_REPLICATION_FACTOR"):
        WorkerSettings()


@pytest.mark.parametrize("factor", ["-1", "3"])
def test_pipeline_and_router_topics_are_created_with_the_setting(monkeypatch, admin, factor):
    monkeypatch.setenv("DG_REPLICATION_FACTOR", factor)
    created = topics.ensure_topics(WorkerSettings())
    router_topics(RouterSettings(), {"bootstrap.servers": "127.0.0.1:1"})
    names = {t.topic for t in admin.created}
    assert set(created) <= names and {"distill.alerts", "distill.feedback", "distill.actions"} <= names
    assert {t.replication_factor for t in admin.created} == {int(factor)}


def test_the_worker_app_and_its_tables_get_both_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("DG_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("DG_TABLE_STANDBY_REPLICAS", "2")
    app = _worker_app(monkeypatch, tmp_path)
    assert app.conf.topic_replication_factor == 3 and app.conf.table_standby_replicas == 2
    changelog = app.tables["key-state"].changelog_topic
    assert (changelog.replicas or app.conf.topic_replication_factor) == 3  # what Faust declares it with


def test_the_router_app_gets_the_same_settings(monkeypatch, tmp_path):
    from distillguard.sinks.routing.routes import parse_routes
    from distillguard.streams.router import create_router_app

    monkeypatch.setenv("DG_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("DG_TABLE_STANDBY_REPLICAS", "1")
    app = create_router_app(RouterSettings(data_dir=tmp_path), parse_routes("dashboard_url: http://grafana:3000\n"))
    assert app.conf.topic_replication_factor == 3 and app.conf.table_standby_replicas == 1


def test_minus_one_becomes_the_brokers_number_when_the_app_starts(monkeypatch, tmp_path):
    monkeypatch.delenv("DG_REPLICATION_FACTOR", raising=False)
    asked = []

    def broker_default(config, timeout=15.0, created_with_default=None):
        asked.append((config["bootstrap.servers"], created_with_default))
        return 3

    monkeypatch.setattr(topics, "broker_default_replication_factor", broker_default)
    app = _worker_app(monkeypatch, tmp_path)
    assert not asked  # building the app does not wait on a broker
    asyncio.run(app.on_first_start())
    settings = WorkerSettings()
    assert app.conf.topic_replication_factor == 3 and asked == [(settings.kafka_bootstrap, settings.requests_topic)]


class ConfigAdmin(RecordingAdmin):
    entries: dict = {}
    topic_replicas: int | None = None

    def list_topics(self, timeout=None):
        partition = type("Partition", (), {"replicas": list(range(self.topic_replicas or 0))})()
        found = {"llm.requests": type("Topic", (), {"partitions": {0: partition, 1: partition}})()}
        return type("Metadata", (), {"topics": found if self.topic_replicas else {}, "brokers": {1: None}})()

    def describe_configs(self, resources, request_timeout=None):
        future = Future()
        if isinstance(self.entries, Exception):
            future.set_exception(self.entries)
        else:
            future.set_result({k: type("Entry", (), {"value": v})() for k, v in self.entries.items()})
        return {resources[0]: future}


@pytest.mark.parametrize("entries, topic_replicas, expected", [
    ({"default.replication.factor": "3"}, 2, 3),
    ({}, None, 1),                                                      # not reported, no topic
    (KafkaException("CLUSTER_AUTHORIZATION_FAILED"), None, 1),           # no DescribeConfigs right
    (KafkaException("CLUSTER_AUTHORIZATION_FAILED"), 3, 3),              # ... the topic made with -1 says
])
def test_the_brokers_default_is_read_from_its_config_or_a_topic_created_with_it(monkeypatch, entries,
                                                                               topic_replicas, expected):
    ConfigAdmin.entries = entries
    ConfigAdmin.topic_replicas = topic_replicas
    monkeypatch.setattr(topics, "AdminClient", ConfigAdmin)
    assert topics.broker_default_replication_factor({"bootstrap.servers": "b:9092"},
                                                    created_with_default="llm.requests") == expected
