"""Schema migrations and rollups on the real embedded engine (chDB).

From an empty database and from a database left at the previous version (with data in
it); rollups equal a direct GROUP BY over the raw table, also after a replayed batch.
"""
from __future__ import annotations


import pyarrow as pa
import pytest

import distillguard.sinks.clickhouse as ch
from distillguard.sinks import migrations
from distillguard.sinks.clickhouse import ClickHouseSink, apply_migrations
from distillguard.sinks.errors import SchemaError

BASE_MS = 1_769_904_000_000


def row(i: int, key: str, org: str = "org") -> dict:
    return dict(event_id=f"e{i}", ts_ms=BASE_MS + i * 13_000, api_key_id=key, account_id=f"acct-{key}",
                org_id=org, model="m", endpoint="/v1/messages", asn=7922, country="US", prompt_chars=40,
                input_tokens=10 + i % 11, output_tokens=20 + i % 97, status=200, latency_ms=300,
                score=(i * 37 % 100) / 100, extraction_style=(i % 4) / 4, topic_bucket=i % 9,
                template_hash=2**64 - 1 - i % 5, alerting=int(i % 17 == 0))


def alert(alert_id: str, severity: str, ts: str, keys=("k1",)) -> dict:
    return {"schema": "distill.alert.v1", "alert_id": alert_id, "ts": ts, "entity_type": "key",
            "entity_id": keys[0], "api_key_ids": list(keys), "score": 0.9, "severity": severity,
            "reasons": [{"signal": "extraction_style", "value": 0.8, "baseline": 0.1, "weight": 1}],
            "events_seen": 60, "detector": "d"}


def tables(client, db: str) -> set[str]:
    return {r[0] for r in client.query(f"SHOW TABLES FROM {db}").result_rows}


def versions(client, db: str) -> list[int]:
    return [r[0] for r in client.query(f"SELECT version FROM {db}.schema_migrations ORDER BY version").result_rows]


ROLLUP_DIRECT = """
SELECT {bucket}(ts) AS b, org_id, api_key_id, any(account_id), count(), max(score), round(avg(score), 5),
       round(avg(extraction_style), 5), uniq(topic_bucket), uniq(template_hash), sum(input_tokens),
       sum(output_tokens), max(alerting)
FROM {db}.events GROUP BY b, org_id, api_key_id ORDER BY b, org_id, api_key_id"""
ROLLUP_MERGED = """
SELECT bucket AS b, org_id, api_key_id, any(account_id), countMerge(events), maxMerge(score_max),
       round(avgMerge(score_avg), 5), round(avgMerge(style_avg), 5), uniqMerge(topics), uniqMerge(templates),
       sumMerge(input_tokens), sumMerge(output_tokens), maxMerge(alerting_max)
FROM {db}.{table} GROUP BY b, org_id, api_key_id ORDER BY b, org_id, api_key_id"""


def rollup(client, db: str, table: str) -> list[tuple]:
    return [tuple(r) for r in client.query(ROLLUP_MERGED.format(db=db, table=table)).result_rows]


def direct(client, db: str, bucket: str) -> list[tuple]:
    return [tuple(r) for r in client.query(ROLLUP_DIRECT.format(db=db, bucket=bucket)).result_rows]


def test_from_empty_to_latest_is_idempotent(client, settings):
    db = settings.database
    assert apply_migrations(client, settings) == [m.version for m in migrations.MIGRATIONS]
    assert apply_migrations(client, settings) == []
    assert versions(client, db) == [m.version for m in migrations.MIGRATIONS]
    assert {"events", "key_minute", "key_hour", "alerts", "alert_history", "incidents", "dlq"} <= tables(client, db)
    # Re-running every statement (a crash after the statements but before the record) is harmless.
    for migration in migrations.MIGRATIONS:
        for statement in migration.statements:
            client.command(statement.format(db=db, ttl_days=settings.events_ttl_days))
    assert versions(client, db) == [m.version for m in migrations.MIGRATIONS]
    cols = client.query(f"SELECT name, type FROM system.columns WHERE database = '{db}'").result_rows
    assert not [n for n, t in cols if "prompt" in n and "String" in t]


def test_a_newer_schema_is_refused(client, settings):
    apply_migrations(client, settings)
    client.insert(f"{settings.database}.schema_migrations", [[migrations.LATEST + 1, "from the future"]],
                  column_names=["version", "name"])
    with pytest.raises(SchemaError):
        apply_migrations(client, settings)


@pytest.mark.parametrize("start", range(1, len(migrations.MIGRATIONS)))
def test_from_previous_version_with_data(client, settings, monkeypatch, start):
    db = settings.database
    # A database written by an earlier release (schema v<start>), with events and alert versions.
    monkeypatch.setattr(ch, "MIGRATIONS", migrations.MIGRATIONS[:start])
    monkeypatch.setattr(ch, "LATEST", migrations.MIGRATIONS[start - 1].version)
    if start < 6:  # that release did not check its rollups on start
        monkeypatch.setattr(ch, "check_rollups", lambda *args, **kwargs: None)
    # that release's feature row had none of the per-event signal columns added since
    signals = {"extraction_evidence"} if start < 5 else set()
    if start < 4:
        signals |= {"style_share", "output_yield", "follow_up_share", "template_repetition", "topic_novelty"}
    if signals:
        old_names = [n for n in ch._ROW_NAMES if n not in signals]
        monkeypatch.setattr(ch, "_ROW_NAMES", old_names)
        monkeypatch.setattr(ch, "_ROW_SCHEMA", pa.schema([f for f in ch._ROW_SCHEMA if f.name not in signals]))
    if start < 7:  # that release stored plain offsets, no input epochs
        monkeypatch.setattr(ch, "_POSITION_COLUMNS", ch._POSITION_COLUMNS[:3])
        monkeypatch.setattr(ch.ClickHouseSink, "_read_watermarks", lambda self: {})
        monkeypatch.setattr(ch.ClickHouseSink, "_read_dlq_watermarks", lambda self: {})
    old = ClickHouseSink(settings, client=client)
    assert versions(client, db) == [m.version for m in migrations.MIGRATIONS[:start]]
    assert ("alert_history" in tables(client, db)) == (start >= 2)
    for i in range(400):
        old.add(row(i, key=f"k{i % 3}"), partition=0, offset=i, topic="t")
    old.add_alert(alert("key:k1:1", "info", "2026-02-01T00:10:00Z"))
    old.add_alert(alert("key:k1:1", "warning", "2026-02-01T00:20:00Z"))
    old.flush()
    monkeypatch.undo()

    upgraded = ClickHouseSink(settings, client=client)  # migrates on start-up, like a worker
    assert versions(client, db) == [m.version for m in migrations.MIGRATIONS]
    assert upgraded.watermarks() == {("t", 0): 399}
    # The history was backfilled from the versions the alerts table still held...
    assert client.query(f"SELECT count() FROM {db}.alert_history").result_rows[0][0] >= 1
    # ... and records every later version; the incident shows the latest one and its whole span.
    upgraded.add_alert(alert("key:k1:1", "critical", "2026-02-01T00:30:00Z"))
    for i in range(400, 500):
        upgraded.add(row(i, key=f"k{i % 3}"), partition=0, offset=i, topic="t")
    upgraded.flush()
    incident = client.query(f"SELECT incident_id, severity, toString(updated_at), updates "
                            f"FROM {db}.incidents").result_rows
    assert incident[0][:3] == ("key:k1:1", "critical", "2026-02-01 00:30:00.000")
    assert incident[0][3] >= 2
    assert rollup(client, db, "key_minute") == direct(client, db, "toStartOfMinute")
    assert rollup(client, db, "key_hour") == direct(client, db, "toStartOfHour")
    assert client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] == 500


def test_rollups_equal_group_by_and_a_replayed_batch_changes_nothing(client, settings):
    db = settings.database
    sink = ClickHouseSink(settings, client=client)
    for i in range(1000):
        sink.add(row(i, key=f"k{i % 7}", org=f"org{i % 2}"), partition=i % 2, offset=i // 2, topic="t")
    sink.flush()
    minute, hour = rollup(client, db, "key_minute"), rollup(client, db, "key_hour")
    assert minute == direct(client, db, "toStartOfMinute")
    assert hour == direct(client, db, "toStartOfHour")
    assert sum(r[4] for r in hour) == 1000

    # The same batches again, as after a lost acknowledgement: a fresh sink with no watermark,
    # so only the insert deduplication tokens stand between the replay and a double count.
    replay = ClickHouseSink(settings, client=client)
    replay._watermarks.clear()
    for i in range(1000):
        replay.add(row(i, key=f"k{i % 7}", org=f"org{i % 2}"), partition=i % 2, offset=i // 2, topic="t")
    replay.flush()
    assert rollup(client, db, "key_minute") == minute
    assert rollup(client, db, "key_hour") == hour
    assert client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] == 1000
