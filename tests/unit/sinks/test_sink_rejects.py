"""Rows ClickHouse refuses are isolated and dead-lettered; an unavailable ClickHouse is retried.

On a real embedded ClickHouse (chDB). Before the isolation, one row that did not fit its
column (output_tokens = 5e9 in a UInt32, a lone surrogate in a String) failed every flush
forever and the worker's commits froze (issue #17, finding 1).
"""
from __future__ import annotations

import time

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from distillguard.devtools.faults import FaultInjection
from distillguard.models.columns import EVENT_COLUMNS
from distillguard.sinks.clickhouse import ClickHouseSink, refuses_rows
from distillguard.sinks.errors import RowsRejected, SinkUnavailable

BASE_MS = 1_769_904_000_000
TOPIC = "llm.requests"


def row(i: int, **over) -> dict:
    values = dict(event_id=f"e{i}", ts_ms=BASE_MS + i * 1_000, api_key_id="k1", account_id="a", org_id="org",
                  model="m", endpoint="/v1/messages", asn=7922, country="US", prompt_chars=40, input_tokens=10,
                  output_tokens=20, status=200, latency_ms=300, score=0.5, extraction_style=0.25, topic_bucket=3,
                  template_hash=2**64 - 1, alerting=0, style_share=0.1, output_yield=0.2, follow_up_share=0.0,
                  template_repetition=0.0, topic_novelty=0.5, extraction_evidence=0.0)
    values.update(over)
    return values


def alert(alert_id: str, key: str = "k1") -> dict:
    return {"schema": "distill.alert.v1", "alert_id": alert_id, "ts": "2026-02-01T00:10:00Z", "entity_type": "key",
            "entity_id": key, "api_key_ids": [key], "score": 0.9, "severity": "warning",
            "reasons": [{"signal": "s", "value": 1, "baseline": 0, "weight": 1}], "events_seen": 40, "detector": "d"}


def rows_of(client, sql: str) -> list[tuple]:
    return client.query(sql).result_rows


class CountingClient:
    """The real chDB client, counting inserts into the events table."""

    def __init__(self, inner):
        self.inner = inner
        self.event_inserts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def insert_arrow(self, table, *args, **kwargs):
        if table.endswith(".events"):
            self.event_inserts += 1
        return self.inner.insert_arrow(table, *args, **kwargs)


POISON = {
    "output_tokens 5e9 (UInt32)": {"output_tokens": 5_000_000_000},
    "lone surrogate in api_key_id": {"api_key_id": "key-\ud800"},
    "lone surrogate in model": {"model": "m\udfff"},
    "negative asn (UInt32)": {"asn": -1},
    "latency_ms past UInt32": {"latency_ms": 2**40},
    "status past UInt16": {"status": 70_000},
}


def test_events_column_types_are_the_migrated_tables(chdb_client, chdb_settings):
    ClickHouseSink(chdb_settings, client=chdb_client)
    types = dict(rows_of(chdb_client, f"SELECT name, type FROM system.columns WHERE database = "
                                      f"'{chdb_settings.database}' AND table = 'events'"))
    migrated = {name: types[name].removeprefix("LowCardinality(").removesuffix(")") for name in EVENT_COLUMNS}
    assert migrated == EVENT_COLUMNS


@pytest.mark.parametrize("case", sorted(POISON))
def test_a_row_that_does_not_fit_is_dead_lettered_and_the_rest_stored(chdb_client, chdb_settings, case):
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    bad = {7, 31}
    for i in range(50):
        sink.add(row(i, **POISON[case]) if i in bad else row(i), partition=0, offset=i, topic=TOPIC)
    sink.flush()  # no exception: the refused rows do not block the rest
    db = chdb_settings.database
    stored = [r[0] for r in rows_of(chdb_client, f"SELECT kafka_offset FROM {db}.events ORDER BY kafka_offset")]
    assert stored == [i for i in range(50) if i not in bad]
    dead = rows_of(chdb_client, f"SELECT offset, reason_class, reason FROM {db}.dlq ORDER BY offset")
    assert [(offset, cls) for offset, cls, _ in dead] == [(7, "sink_rejected"), (31, "sink_rejected")]
    assert all(reason.startswith("sink_rejected: events: ") for _, _, reason in dead)
    taken = sink.take_rejected()
    assert [(r.table, r.topic, r.partition, r.offset) for r in taken] == [("events", TOPIC, 0, 7),
                                                                           ("events", TOPIC, 0, 31)]
    assert sink.take_rejected() == [] and sink.rows_rejected == 2
    assert sink.watermarks()[(TOPIC, 0)] == 49
    # The next record is stored; the rollups saw exactly the stored rows.
    sink.add(row(50), partition=0, offset=50, topic=TOPIC)
    sink.flush()
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.events")[0][0] == 49
    assert rows_of(chdb_client, f"SELECT countMerge(events) FROM {db}.key_minute")[0][0] == 49


def test_records_re_read_after_a_crash_are_neither_stored_nor_dead_lettered_twice(chdb_client, chdb_settings):
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    for i in range(10):
        sink.add(row(i, output_tokens=-5) if i == 4 else row(i), partition=1, offset=i, topic=TOPIC)
    sink.flush()
    restarted = ClickHouseSink(chdb_settings, client=chdb_client)  # the offsets were not committed
    for i in range(10):
        added = restarted.add(row(i, output_tokens=-5) if i == 4 else row(i), partition=1, offset=i, topic=TOPIC)
        assert not added
    restarted.add_dead_letter("sink_rejected: events: again", TOPIC, 1, 4, 0)
    restarted.flush()
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.events")[0][0] == 9
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.dlq")[0][0] == 1


def test_isolation_costs_a_logarithmic_number_of_inserts(chdb_client, chdb_settings):
    client = CountingClient(chdb_client)
    sink = ClickHouseSink(chdb_settings.model_copy(update={"batch_rows": 1024}), client=client)
    for i in range(1024):
        sink.add(row(i, input_tokens=2**33) if i == 600 else row(i), partition=0, offset=i, topic=TOPIC)
    sink.flush()
    # The whole batch, then two halves at each of the log2(1024) = 10 levels.
    assert client.event_inserts <= 1 + 2 * 10
    assert rows_of(chdb_client, f"SELECT count() FROM {chdb_settings.database}.events")[0][0] == 1023


def test_an_unavailable_clickhouse_is_retried_whole_not_dead_lettered(chdb_client, chdb_settings, tmp_path):
    fault = tmp_path / "clickhouse-down"
    fault.touch()
    sink = ClickHouseSink(chdb_settings, client=chdb_client, faults=FaultInjection(clickhouse_down_file=fault))
    for i in range(20):
        sink.add(row(i), partition=0, offset=i, topic=TOPIC)
    with pytest.raises(SinkUnavailable):
        sink.flush()
    assert sink.take_rejected() == [] and sink.buffered == 20
    fault.unlink()
    sink.flush()
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.events")[0][0] == 20
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.dlq")[0][0] == 0


class FailsOnceWhenRowsFit:
    """The real client; the first events insert that holds no refused row fails as if the
    connection dropped: an outage in the middle of an isolation."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 1

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def insert_arrow(self, table, data, **kwargs):
        if table.endswith(".events") and self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        return self.inner.insert_arrow(table, data, **kwargs)


def test_an_outage_during_isolation_loses_and_duplicates_nothing(chdb_client, chdb_settings):
    client = FailsOnceWhenRowsFit(chdb_client)
    sink = ClickHouseSink(chdb_settings, client=client)
    for i in range(16):
        sink.add(row(i, country="\ud83d") if i == 9 else row(i), partition=0, offset=i, topic=TOPIC)
    with pytest.raises(SinkUnavailable):
        sink.flush()  # the left half (0..7) fits and meets the outage: everything is put back
    sink.flush()
    db = chdb_settings.database
    assert [r[0] for r in rows_of(chdb_client, f"SELECT kafka_offset FROM {db}.events ORDER BY kafka_offset")] \
        == [i for i in range(16) if i != 9]
    assert rows_of(chdb_client, f"SELECT offset FROM {db}.dlq")[0][0] == 9
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.dlq")[0][0] == 1


def test_a_refused_alert_is_dead_lettered_and_the_other_alerts_stored(chdb_client, chdb_settings):
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    sink.add_alert(alert("key:k1:1"))
    sink.add_alert(alert("key:bad:1", key="bad\ud800"))
    sink.add_alert(dict(alert("key:k3:1"), ts="not a time"))
    sink.add_alert(alert("key:k2:1", key="k2"))
    sink.flush()
    assert sorted(a["alert_id"] for a in sink.alert_rows()) == ["key:k1:1", "key:k2:1"]
    reasons = [r[0] for r in rows_of(chdb_client, f"SELECT reason FROM {chdb_settings.database}.dlq")]
    assert len(reasons) == 2 and all(r.startswith("sink_rejected: alerts: ") for r in reasons)
    assert sorted(r.entity for r in sink.take_rejected()) == ["key:bad:1", "key:k3:1"]


def test_a_dead_letter_that_cannot_be_stored_is_counted_and_never_blocks(chdb_client, chdb_settings):
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    sink.add_dead_letter("not JSON: bad \ud800 escape", TOPIC, 0, 1, 10)  # storable once escaped
    sink.add_dead_letter("too big", TOPIC, 0, 2, 2**40)  # size does not fit UInt32
    sink.add_dead_letter("not JSON: x", TOPIC, 0, 3, 5)
    sink.flush()
    stored = rows_of(chdb_client, f"SELECT offset, reason FROM {chdb_settings.database}.dlq ORDER BY offset")
    assert stored == [(1, "not JSON: bad \\ud800 escape"), (3, "not JSON: x")]
    assert sink.dead_letters_lost == 1


@pytest.mark.parametrize("exc,refused", [
    (RowsRejected("row 3"), True),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
    (OverflowError("int too big"), True),
    (DatabaseError("Code: 53. DB::Exception: Type mismatch in VALUES section. (TYPE_MISMATCH)"), True),
    (DatabaseError("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"), False),
    (DatabaseError("Code: 164. DB::Exception: Table is in readonly mode. (READONLY)"), False),
    (OperationalError("Error HTTPConnectionPool: read timed out"), False),
    (ConnectionRefusedError("refused"), False),
    (TimeoutError("timed out"), False),
])
def test_errors_about_rows_are_told_from_an_unavailable_clickhouse(exc, refused):
    assert refuses_rows(exc) is refused


def test_a_row_older_than_the_events_ttl_is_dead_lettered_not_dropped_silently(chdb_client, chdb_settings):
    # ClickHouse applies the TTL at insert: such a row would vanish without an error.
    sink = ClickHouseSink(chdb_settings.model_copy(update={"events_ttl_days": 30}), client=chdb_client)
    now_ms = int(time.time() * 1000)
    sink.add(row(0, ts_ms=now_ms - 31 * 86_400_000), partition=0, offset=0, topic=TOPIC)
    sink.add(row(1, ts_ms=now_ms - 29 * 86_400_000), partition=0, offset=1, topic=TOPIC)
    sink.flush()
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT kafka_offset FROM {db}.events") == [(1,)]
    assert rows_of(chdb_client, f"SELECT offset, reason FROM {db}.dlq") == [
        (0, "sink_rejected: events: ts older than the events TTL (30 days)")]
    assert [r.offset for r in sink.take_rejected()] == [0]


def test_a_refused_row_is_dead_lettered_once_when_clickhouse_fails_later_in_the_flush(chdb_client, chdb_settings,
                                                                                      alerts_fail_once):
    sink = ClickHouseSink(chdb_settings, client=alerts_fail_once)
    for i in range(10):
        sink.add(row(i, output_tokens=2**32) if i == 5 else row(i), partition=0, offset=i, topic=TOPIC)
    sink.add_dead_letter("not JSON: x", TOPIC, 0, 10, 4)
    sink.add_alert(alert("key:k1:1"))
    with pytest.raises(SinkUnavailable):
        sink.flush()  # rows stored and row 5 refused, then the alerts insert meets an outage
    sink.flush()
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT count(), uniqExact(kafka_offset) FROM {db}.events") == [(9, 9)]
    assert rows_of(chdb_client, f"SELECT offset, reason_class FROM {db}.dlq ORDER BY offset") == [
        (5, "sink_rejected"), (10, "not JSON")]
    assert [a["alert_id"] for a in sink.alert_rows()] == ["key:k1:1"]
    assert [r.offset for r in sink.take_rejected()] == [5]


def test_refused_rows_nobody_takes_are_bounded_and_still_dead_lettered(chdb_client, chdb_settings, monkeypatch):
    import distillguard.sinks.clickhouse as clickhouse

    monkeypatch.setattr(clickhouse, "_MAX_REJECTED_KEPT", 3)
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    for i in range(5):
        sink.add(row(i, status=-1), partition=0, offset=i, topic=TOPIC)
    sink.flush()
    assert len(sink.take_rejected()) == 3 and sink.rows_rejected == 5
    assert rows_of(chdb_client, f"SELECT count() FROM {chdb_settings.database}.dlq")[0][0] == 5


def test_a_row_delivered_again_before_the_flush_is_stored_once(chdb_client, chdb_settings):
    """A rebalance can roll a key's state back to its changelog, older than the rows buffered:
    the records come again and are applied again before the first copies were flushed. The
    watermark (stored rows only) let both copies into one insert (seen with a broker restarted
    under a running worker)."""
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    for i in range(10):
        assert sink.add(row(i), partition=0, offset=i, topic=TOPIC)
    assert not sink.add(row(4), partition=0, offset=4, topic=TOPIC)  # again, still buffered
    assert sink.add(row(10), partition=0, offset=10, topic=TOPIC)
    sink.add_dead_letter("bad_json: x", TOPIC, 1, 3, 10)
    sink.add_dead_letter("bad_json: x", TOPIC, 1, 3, 10)
    sink.flush()
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT count(), uniqExact(kafka_offset) FROM {db}.events")[0] == (11, 11)
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.dlq")[0][0] == 1
    assert not sink.add(row(10), partition=0, offset=10, topic=TOPIC)  # and after it: the watermark


def test_one_flush_is_one_insert_for_all_partitions(chdb_client, chdb_settings):
    # chDB spends ~45 ms of CPU per insert whatever its size: an insert per partition per
    # flush took most of a core. Every partition's rows go in one insert, each partition's
    # watermark moving to its own last offset.
    client = CountingClient(chdb_client)
    sink = ClickHouseSink(chdb_settings, client=client)
    for partition in range(8):
        for offset in range(5):
            sink.add(row(partition * 100 + offset), partition=partition, offset=offset, topic=TOPIC)
    sink.flush()
    assert client.event_inserts == 1
    assert sink.watermarks() == {(TOPIC, partition): 4 for partition in range(8)}
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT kafka_partition, count(), max(kafka_offset) FROM {db}.events "
                                f"GROUP BY kafka_partition ORDER BY kafka_partition") == \
        [(partition, 5, 4) for partition in range(8)]


def test_a_refused_row_in_a_many_partition_insert_is_dead_lettered_alone(chdb_client, chdb_settings):
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    for partition in range(4):
        for offset in range(6):
            poison = partition == 2 and offset == 3
            sink.add(row(partition * 100 + offset, output_tokens=-5) if poison else row(partition * 100 + offset),
                     partition=partition, offset=offset, topic=TOPIC)
    sink.flush()
    assert [(r.table, r.partition, r.offset) for r in sink.take_rejected()] == [("events", 2, 3)]
    assert sink.watermarks() == {(TOPIC, partition): 5 for partition in range(4)}
    db = chdb_settings.database
    assert rows_of(chdb_client, f"SELECT count() FROM {db}.events")[0][0] == 23
    assert rows_of(chdb_client, f"SELECT countMerge(events) FROM {db}.key_minute")[0][0] == 23
    assert rows_of(chdb_client, f"SELECT partition, offset FROM {db}.dlq") == [(2, 3)]
