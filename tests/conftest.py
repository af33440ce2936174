"""Fixtures shared by the unit and the integration suites."""
from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def chdb_client(tmp_path_factory):
    """One embedded ClickHouse (chDB) for the whole run: chDB opens one data directory per
    process. Each test writes to a database of its own (``chdb_settings``)."""
    from distillguard.sinks.clickhouse import ClickHouseSettings, make_client

    client = make_client(ClickHouseSettings(data_dir=tmp_path_factory.mktemp("chdb")))
    yield client
    client.close()


@pytest.fixture
def chdb_settings(chdb_client):
    """Settings for a database of this test's own in the shared chDB."""
    from distillguard.sinks.clickhouse import ClickHouseSettings

    return ClickHouseSettings(database=f"t_{uuid.uuid4().hex[:10]}", batch_rows=500)
