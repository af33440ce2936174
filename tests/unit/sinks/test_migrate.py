"""DG_CLICKHOUSE_MIGRATE=false: a worker or the dashboard runs no DDL and stops with the reason
until `distillguard migrate` (the k8s Job) has brought the schema to this version."""
from __future__ import annotations

import pytest

from distillguard import cli
from distillguard.sinks.clickhouse import ClickHouseSink, prepare_schema, schema_version
from distillguard.sinks.errors import SchemaError
from distillguard.sinks.migrations import LATEST


def _databases(client, name: str) -> int:
    return client.query(f"SELECT count() FROM system.databases WHERE name = '{name}'").result_rows[0][0]


def test_without_migrate_a_process_runs_no_ddl_and_names_the_command(chdb_client, chdb_settings):
    settings = chdb_settings.model_copy(update={"migrate": False})
    with pytest.raises(SchemaError, match="distillguard migrate"):
        ClickHouseSink(settings, client=chdb_client)
    assert _databases(chdb_client, settings.database) == 0  # not even CREATE DATABASE


def test_migrate_applies_the_schema_then_processes_start_without_ddl(chdb_dir, chdb_client, chdb_settings,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("DG_CLICKHOUSE_DATABASE", chdb_settings.database)
    monkeypatch.delenv("DG_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    assert cli.main(["migrate", "--data-dir", str(chdb_dir)]) == 0
    assert f"schema v{LATEST}, applied" in capsys.readouterr().out
    settings = chdb_settings.model_copy(update={"migrate": False})
    assert schema_version(chdb_client, settings) == LATEST
    assert prepare_schema(chdb_client, settings) == []
    sink = ClickHouseSink(settings, client=chdb_client)  # starts, and reads what it needs
    assert sink.table_counts()["events"] == 0
    assert cli.main(["migrate", "--data-dir", str(chdb_dir)]) == 0  # a second run changes nothing
    assert "up to date" in capsys.readouterr().out


def test_the_setting_is_read_from_the_environment(monkeypatch):
    from distillguard.sinks.clickhouse import ClickHouseSettings

    assert ClickHouseSettings().migrate is True
    monkeypatch.setenv("DG_CLICKHOUSE_MIGRATE", "false")
    assert ClickHouseSettings().migrate is False
