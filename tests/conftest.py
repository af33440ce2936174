"""Fixtures shared by the unit and the integration suites."""
from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory):
    """The data dir of the run's one chDB (for a command that opens it by its data dir)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def chdb_client(chdb_dir):
    """One embedded ClickHouse (chDB) for the whole run: chDB opens one data directory per
    process. Each test writes to a database of its own (``chdb_settings``)."""
    from distillguard.sinks.clickhouse import ClickHouseSettings, make_client

    client = make_client(ClickHouseSettings(data_dir=chdb_dir))
    yield client
    client.close()


@pytest.fixture
def chdb_settings(chdb_client):
    """Settings for a database of this test's own in the shared chDB."""
    from distillguard.sinks.clickhouse import ClickHouseSettings

    return ClickHouseSettings(database=f"t_{uuid.uuid4().hex[:10]}", batch_rows=500)


class AlertsFailOnce:
    """The real client; its first alerts insert fails as if the connection dropped: a flush
    that fails half way, after its event rows were stored."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 1

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def insert(self, table, *args, **kwargs):
        if table.endswith(".alerts") and self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        return self.inner.insert(table, *args, **kwargs)


@pytest.fixture
def alerts_fail_once(chdb_client) -> AlertsFailOnce:
    return AlertsFailOnce(chdb_client)
