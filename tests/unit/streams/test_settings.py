"""Worker settings: env names, SASL/TLS config, secrets never shown."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from distillguard.errors import SettingsError
from distillguard.streams.settings import WorkerSettings


def test_reads_env_names(monkeypatch):
    monkeypatch.setenv("DG_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("DG_PARTITIONS", "12")
    monkeypatch.setenv("DG_ALERTS_TOPIC", "alerts.x")
    settings = WorkerSettings()
    assert (settings.kafka_bootstrap, settings.partitions, settings.alerts_topic) == ("kafka:9092", 12, "alerts.x")


def test_frozen():
    with pytest.raises(ValidationError):
        WorkerSettings().partitions = 3


def test_sasl_scram_over_tls(monkeypatch, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("DG_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DG_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DG_KAFKA_SASL_USERNAME", "dg-worker")
    monkeypatch.setenv("DG_KAFKA_SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("DG_KAFKA_SSL_CAFILE", str(ca))
    settings = WorkerSettings()
    conf = settings.confluent_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "dg-worker" and conf["sasl.password"] == "hunter2-secret"
    assert conf["ssl.ca.location"] == str(ca)
    # The secret never shows in repr/str/model_dump_json (what logs would print).
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)
    assert "hunter2-secret" not in settings.model_dump_json()


def test_sasl_without_credentials_is_a_startup_error(monkeypatch):
    monkeypatch.setenv("DG_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError, match="SASL needs"):
        WorkerSettings()


def test_faust_credentials_built_from_settings(monkeypatch):
    monkeypatch.setenv("DG_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DG_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("DG_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("DG_KAFKA_SASL_PASSWORD", "p")
    creds = WorkerSettings().faust_credentials()
    assert creds.username == "u" and creds.password == "p"
    assert creds.mechanism.value == "SCRAM-SHA-256" and creds.ssl_context is not None
    assert WorkerSettings(kafka_security_protocol="PLAINTEXT").faust_credentials() is None


def test_dashboard_and_metrics_bind_to_loopback_by_default(monkeypatch, tmp_path):
    from distillguard.streams.app import faust_app

    monkeypatch.delenv("DG_WEB_BIND", raising=False)
    monkeypatch.delenv("DG_WEB_HOST", raising=False)
    settings = WorkerSettings()
    assert settings.web_bind == "127.0.0.1"
    # what Faust listens on (its own default is every interface)
    app = faust_app(settings, tmp_path, auto_offset_reset="earliest", replication_probe_topic=settings.requests_topic)
    assert app.conf.web_bind == "127.0.0.1"


def test_allowed_lateness_from_env(monkeypatch):
    assert WorkerSettings().allowed_lateness_s == 900.0
    monkeypatch.setenv("DG_ALLOWED_LATENESS_S", "60")
    assert WorkerSettings().allowed_lateness_s == 60.0


def test_tls_without_sasl(monkeypatch, tmp_path):
    monkeypatch.setenv("DG_KAFKA_SECURITY_PROTOCOL", "SSL")
    settings = WorkerSettings()
    conf = settings.confluent_config()
    assert conf["security.protocol"] == "SSL" and "sasl.password" not in conf
    creds = settings.faust_credentials()
    assert type(creds).__name__ == "SSLCredentials" and creds.context is not None


def test_faust_app_gets_the_credentials_and_confluent_clients_the_same_secret(monkeypatch, tmp_path):
    from distillguard.streams.app import worker_app

    monkeypatch.setenv("DG_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DG_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DG_KAFKA_SASL_USERNAME", "dg-worker")
    monkeypatch.setenv("DG_KAFKA_SASL_PASSWORD", "scram-secret")
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))

    class NoSink:
        client = None

    settings = WorkerSettings()
    from distillguard.streams import feedback_follower

    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    app = worker_app(settings, pipeline=object(), sink=NoSink())
    creds = app.conf.broker_credentials
    assert (creds.username, creds.password, creds.mechanism.value) == ("dg-worker", "scram-secret", "SCRAM-SHA-512")
    assert creds.ssl_context is not None
    assert settings.confluent_config()["sasl.password"] == "scram-secret"


def test_router_and_dashboard_bind_to_loopback_by_default(monkeypatch):
    from distillguard.dashboard.server import DashboardSettings
    from distillguard.streams.router import RouterSettings

    for name in ("DG_WEB_BIND", "DG_WEB_HOST", "DG_ROUTER_WEB_BIND", "DG_ROUTER_WEB_HOST", "DG_DASHBOARD_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert WorkerSettings().web_bind == RouterSettings().web_bind == DashboardSettings().host == "127.0.0.1"
    monkeypatch.setenv("DG_DASHBOARD_HOST", "0.0.0.0")
    assert DashboardSettings().host == "0.0.0.0"  # only when configured


@pytest.mark.parametrize("env, expected", [({}, 100), ({"DG_CONSUMER_FETCH_MAX_WAIT_MS": "250"}, 250)])
def test_faust_consumers_wait_at_most_the_configured_fetch_time(monkeypatch, tmp_path, env, expected):
    # Faust builds its aiokafka consumer with a fixed 1,500 ms fetch wait; the setting replaces it.
    import asyncio

    from distillguard.streams.app import faust_app

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = WorkerSettings(data_dir=str(tmp_path))
    app = faust_app(settings, tmp_path, auto_offset_reset="earliest", replication_probe_topic=settings.requests_topic)

    async def build():
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # what the worker starts
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == expected


def test_fetch_wait_is_bounded():
    with pytest.raises(SettingsError, match="DG_CONSUMER_FETCH_MAX_WAIT_MS"):
        WorkerSettings(consumer_fetch_max_wait_ms=0)


def test_a_bad_value_is_a_config_error_naming_the_variable_and_field_not_the_value(monkeypatch):
    from distillguard.errors import ConfigError

    monkeypatch.setenv("DG_PARTITIONS", "many-hunter2")
    with pytest.raises(ConfigError) as raised:
        WorkerSettings()
    message = str(raised.value)
    assert "DG_PARTITIONS" in message and "field partitions" in message
    assert "hunter2" not in message  # a value may be a secret: never echoed


def test_the_router_reads_kafka_from_the_shared_kafka_settings_not_the_workers(monkeypatch, tmp_path):
    from distillguard.sinks.routing.routes import parse_routes
    from distillguard.streams.router import RouterSettings, create_router_app
    from distillguard.streams.settings import KafkaSettings

    monkeypatch.setenv("DG_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DG_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("DG_KAFKA_SASL_USERNAME", "dg-router")
    monkeypatch.setenv("DG_KAFKA_SASL_PASSWORD", "router-secret")
    monkeypatch.setenv("DG_MAX_FUTURE_S", "-1")  # a worker-only setting the router has no use for
    settings = RouterSettings(data_dir=tmp_path)
    assert isinstance(settings, KafkaSettings)
    assert settings.confluent_config()["sasl.username"] == "dg-router"
    app = create_router_app(settings, parse_routes("dashboard_url: http://grafana:3000\n"))
    assert (app.conf.broker_credentials.username, app.conf.broker_credentials.password) == ("dg-router", "router-secret")
