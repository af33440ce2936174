"""ClickHouse connection settings -> clickhouse-connect client arguments; credentials never shown."""
from __future__ import annotations

import clickhouse_connect
import pytest

from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink, make_client
from distillguard.sinks.errors import SinkUnavailable


@pytest.fixture
def captured(monkeypatch):
    calls: list[dict] = []

    def fake_get_client(**kwargs):
        calls.append(kwargs)
        return object()

    monkeypatch.setattr(clickhouse_connect, "get_client", fake_get_client)
    return calls


def test_user_and_password_from_env_reach_the_client(monkeypatch, captured):
    monkeypatch.setenv("DG_CLICKHOUSE_URL", "https://clickhouse.internal:8443/distillguard")
    monkeypatch.setenv("DG_CLICKHOUSE_USER", "dg_writer")
    monkeypatch.setenv("DG_CLICKHOUSE_PASSWORD", "pw-from-secret")
    settings = ClickHouseSettings()
    make_client(settings)
    (kwargs,) = captured
    assert kwargs["host"] == "clickhouse.internal" and kwargs["port"] == 8443 and kwargs["secure"] is True
    assert kwargs["username"] == "dg_writer" and kwargs["password"] == "pw-from-secret"
    assert "pw-from-secret" not in repr(settings) and "pw-from-secret" not in settings.model_dump_json()
    assert "pw-from-secret" not in settings.describe()


def test_credentials_in_the_url_are_used_and_never_described(monkeypatch, captured):
    monkeypatch.setenv("CLICKHOUSE_URL", "http://alice:url-secret@ch:8123/distillguard")
    settings = ClickHouseSettings()
    make_client(settings)
    (kwargs,) = captured
    assert (kwargs["host"], kwargs["port"], kwargs["secure"]) == ("ch", 8123, False)
    assert (kwargs["username"], kwargs["password"]) == ("alice", "url-secret")
    assert settings.describe() == "http://ch:8123/distillguard"


def test_password_setting_overrides_the_url(monkeypatch, captured):
    monkeypatch.setenv("DG_CLICKHOUSE_URL", "http://alice:old@ch:8123/distillguard")
    monkeypatch.setenv("DG_CLICKHOUSE_PASSWORD", "rotated")
    make_client(ClickHouseSettings())
    assert captured[0]["password"] == "rotated" and captured[0]["username"] == "alice"


def test_defaults_to_embedded_chdb(monkeypatch, captured, tmp_path):
    monkeypatch.delenv("DG_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    settings = ClickHouseSettings()
    assert settings.embedded
    make_client(settings)
    assert captured[0] == {"dsn": f"chdb://{(tmp_path / 'clickhouse').resolve()}"}


def test_connection_error_names_the_server_not_the_password(monkeypatch):
    def refuse(**kwargs):
        raise ConnectionError(f"cannot reach {kwargs['host']}:{kwargs['port']}")

    monkeypatch.setattr(clickhouse_connect, "get_client", refuse)
    monkeypatch.setenv("DG_CLICKHOUSE_URL", "http://bob:hunter2@ch:8123/db")
    with pytest.raises(SinkUnavailable) as err:
        make_client(ClickHouseSettings())
    assert "ch:8123" in str(err.value) and "hunter2" not in str(err.value)


class RecordingClient:
    """A clickhouse-connect client as get_client(**kwargs) makes it, answering from chDB and
    recording which calls reach it."""

    def __init__(self, backend, kwargs):
        self.backend, self.kwargs, self.calls = backend, kwargs, []

    def __getattr__(self, name):
        method = getattr(self.backend, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            return method(*args, **kwargs)
        return call

    def close(self):
        self.calls.append("close")


@pytest.fixture
def server_clients(monkeypatch, chdb_client, chdb_settings):
    """A "ClickHouse server" whose clients are chDB underneath: every client made is recorded."""
    made: list[RecordingClient] = []

    def get_client(**kwargs):
        made.append(RecordingClient(chdb_client, kwargs))
        return made[-1]

    monkeypatch.setattr(clickhouse_connect, "get_client", get_client)
    settings = chdb_settings.model_copy(update={"url": "http://clickhouse.internal:8123/distillguard"})
    return settings, made


def test_web_queries_use_their_own_session_less_client_never_the_writers(server_clients):
    settings, made = server_clients
    sink = ClickHouseSink(settings)
    writer, reader = made
    assert "autogenerate_session_id" not in writer.kwargs  # the flush thread keeps its session
    assert reader.kwargs["autogenerate_session_id"] is False  # concurrent web queries need none
    writer.calls.clear()
    sink.add_alert({"alert_id": "key:k1:1", "ts": "2026-02-01T10:00:00Z", "entity_type": "key", "entity_id": "k1",
                    "api_key_ids": ["k1"], "score": 0.9, "severity": "critical", "reasons": []})
    sink.flush()
    assert sink.alert_rows()[0]["alert_id"] == "key:k1:1" and sink.table_counts()["alerts"] == 1
    sink.summary()
    assert "insert" in writer.calls and "query" not in writer.calls
    assert reader.calls and set(reader.calls) == {"query"}
    sink.close()
    assert writer.calls[-1] == reader.calls[-1] == "close"


def test_the_dashboard_queries_on_a_session_less_client(server_clients):
    from distillguard.dashboard.server import open_queries

    settings, made = server_clients
    open_queries(settings)
    (client,) = made
    assert client.kwargs["autogenerate_session_id"] is False
