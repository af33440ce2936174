"""The ClickHouse sink on the real embedded engine (chDB): schema, rollups, idempotency, back-pressure.

chDB allows one open data directory per process, so the whole module shares one client
and every test writes to its own database.
"""
from __future__ import annotations


import pytest

from distillguard.sinks.clickhouse import ClickHouseSink, apply_migrations
from distillguard.sinks.errors import SinkBackpressureError, SinkUnavailable
from distillguard.sinks.migrations import LATEST
from distillguard.streams.epochs import StoredRecord, position

BASE_MS = 1_769_904_000_000


def row(i: int, key: str = "k1", score: float = 0.5) -> dict:
    return dict(event_id=f"e{i}", ts_ms=BASE_MS + i * 7_000, api_key_id=key, account_id="a", org_id="org",
                model="m", endpoint="/v1/messages", asn=7922, country="US", prompt_chars=40, input_tokens=10,
                output_tokens=20, status=200, latency_ms=300, score=score, extraction_style=0.25,
                topic_bucket=i % 7, template_hash=(2**64 - 1 - i % 3), alerting=0)


def alert(alert_id: str, severity: str, ts: str) -> dict:
    return {"schema": "distill.alert.v1", "alert_id": alert_id, "ts": ts, "entity_type": "key", "entity_id": "k1",
            "api_key_ids": ["k1"], "score": 0.9, "severity": severity,
            "reasons": [{"signal": "s", "value": 1, "baseline": 0, "weight": 1}], "events_seen": 40,
            "detector": "d"}


def count(client, sql: str) -> int:
    return client.query(sql).result_rows[0][0]


def test_migrations_from_empty_and_reapplied(client, settings):
    assert apply_migrations(client, settings) == [m for m in range(1, LATEST + 1)]
    assert apply_migrations(client, settings) == []
    tables = {r[0] for r in client.query(f"SHOW TABLES FROM {settings.database}").result_rows}
    assert {"events", "key_minute", "key_hour", "alerts", "dlq", "schema_migrations"} <= tables
    # No column anywhere holds prompt text.
    cols = client.query(f"SELECT name, type FROM system.columns WHERE database = '{settings.database}'").result_rows
    assert not [n for n, t in cols if "prompt" in n and "String" in t]


def test_rollups_equal_group_by_over_raw(client, settings):
    sink = ClickHouseSink(settings, client=client)
    for i in range(1200):
        sink.add(row(i, key=f"k{i % 5}", score=(i % 10) / 10), partition=i % 3, offset=i // 3, topic="t")
    sink.flush()
    db = settings.database
    direct = client.query(f"SELECT toStartOfMinute(ts) AS m, api_key_id, count(), max(score), uniq(topic_bucket) "
                          f"FROM {db}.events GROUP BY m, api_key_id ORDER BY m, api_key_id").result_rows
    rolled = client.query(f"SELECT bucket, api_key_id, countMerge(events), maxMerge(score_max), uniqMerge(topics) "
                          f"FROM {db}.key_minute GROUP BY bucket, api_key_id ORDER BY bucket, api_key_id").result_rows
    assert [tuple(r) for r in rolled] == [tuple(r) for r in direct]
    assert count(client, f"SELECT countMerge(events) FROM {db}.key_hour") == 1200


def test_replayed_rows_and_batches_do_not_double_count(client, settings):
    sink = ClickHouseSink(settings, client=client)
    for i in range(300):
        sink.add(row(i), partition=0, offset=i, topic="t")
    sink.flush()
    # A worker restarted from an older committed offset re-reads the same events: dropped.
    restarted = ClickHouseSink(settings, client=client)
    assert restarted.watermarks() == {("t", 0): 299}
    assert [restarted.add(row(i), partition=0, offset=i, topic="t") for i in (100, 299)] == [False, False]
    assert restarted.add(row(300), partition=0, offset=300, topic="t")
    restarted.flush()
    # The very same batch sent twice (a retry after a lost acknowledgement) is deduplicated.
    again = ClickHouseSink(settings, client=client)
    again._watermarks.clear()
    for i in range(300):
        again.add(row(i), partition=0, offset=i, topic="t")
    again.flush()
    db = settings.database
    assert count(client, f"SELECT count() FROM {db}.events") == 301
    assert count(client, f"SELECT countMerge(events) FROM {db}.key_minute") == 301


def test_a_new_epoch_of_a_partition_is_stored_below_the_old_watermark(client, settings):
    """A broker back empty (or a topic recreated) starts offsets at 0 again: its records carry
    the next epoch in their position and are stored, and stay deduplicated within it."""
    sink = ClickHouseSink(settings, client=client)
    for i in range(100):
        sink.add(row(i), partition=0, offset=position(0, i), topic="t")
    sink.add_dead_letter("not JSON: x", "t", 0, position(0, 100), 10)
    sink.flush()
    assert sink.stored_position("t", 0) == position(0, 100)
    assert [sink.add(row(1000 + i), partition=0, offset=position(1, i), topic="t") for i in range(50)] == [True] * 50
    sink.add_dead_letter("not JSON: y", "t", 0, position(1, 50), 10)
    sink.flush()
    restarted = ClickHouseSink(settings, client=client)
    assert restarted.watermarks() == {("t", 0): position(1, 49)}
    assert restarted.stored_position("t", 0) == position(1, 50)
    assert not restarted.add(row(1010), partition=0, offset=position(1, 10), topic="t")  # a re-read of the new log
    # what is stored at a position, to tell a re-read from a new log
    assert restarted.stored_at("t", 0, position(0, 10)) == StoredRecord("row", "e10")
    assert restarted.stored_at("t", 0, position(1, 10)) == StoredRecord("row", "e1010")
    assert restarted.stored_at("t", 0, position(0, 100)) == StoredRecord("dead")
    assert restarted.stored_at("t", 0, position(1, 51)) is None
    db = settings.database
    assert client.query(f"SELECT kafka_epoch, min(kafka_offset), max(kafka_offset), count() FROM {db}.events "
                        f"GROUP BY kafka_epoch ORDER BY kafka_epoch").result_rows == [(0, 0, 99, 100), (1, 0, 49, 50)]
    assert client.query(f"SELECT epoch, offset FROM {db}.dlq ORDER BY epoch").result_rows == [(0, 100), (1, 50)]
    assert count(client, f"SELECT countMerge(events) FROM {db}.key_minute") == 150


def test_alert_updates_replace_by_id(client, settings):
    sink = ClickHouseSink(settings, client=client)
    sink.add_alert(alert("key:k1:1", "warning", "2026-02-01T00:10:00Z"))
    sink.add_alert(alert("key:k1:1", "critical", "2026-02-01T00:20:00Z"))
    sink.add_alert(alert("key:k1:1", "warning", "2026-02-01T00:10:00Z"))  # a late re-send of the first
    sink.flush()
    rows = sink.alert_rows()
    assert [(r["alert_id"], r["severity"]) for r in rows] == [("key:k1:1", "critical")]


class FailingClient:
    """A real client whose inserts fail, as when the ClickHouse server is down."""

    def __init__(self, inner):
        self.inner = inner
        self.down = True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def insert_arrow(self, *args, **kwargs):
        if self.down:
            raise ConnectionError("clickhouse unreachable")
        return self.inner.insert_arrow(*args, **kwargs)


def test_backpressure_when_clickhouse_fails_then_recovers(client, settings):
    limited = settings.model_copy(update={"max_buffered_rows": 100})
    failing = FailingClient(client)
    sink = ClickHouseSink(limited, client=failing)
    for i in range(100):
        sink.add(row(i), partition=0, offset=i, topic="t")
    with pytest.raises(SinkUnavailable):
        sink.flush()
    assert sink.buffered == 100  # nothing lost
    with pytest.raises(SinkBackpressureError) as info:
        sink.add(row(100), partition=0, offset=100, topic="t")
    assert info.value.retry_after > 0
    failing.down = False
    assert sink.flush() == 100
    sink.add(row(100), partition=0, offset=100, topic="t")
    sink.flush()
    assert count(client, f"SELECT count() FROM {settings.database}.events") == 101


class SlowFailingClient(FailingClient):
    """Inserts that hang until released, then fail: a write in flight while rows keep coming."""

    def __init__(self, inner):
        super().__init__(inner)
        import threading
        self.entered, self.release = threading.Event(), threading.Event()

    def insert_arrow(self, *args, **kwargs):
        self.entered.set()
        self.release.wait(10)
        return super().insert_arrow(*args, **kwargs)


def test_rows_of_a_flush_in_flight_count_against_the_buffer_bound(client, settings):
    # The worker flushes off the agent's thread: while a write is in flight the buffer looked
    # empty and the agent kept adding (605 rows past a 200-row bound in one outage test run).
    import threading
    slow = SlowFailingClient(client)
    sink = ClickHouseSink(settings.model_copy(update={"max_buffered_rows": 50}), client=slow)
    for i in range(80):
        sink.add(row(i), partition=0, offset=i, topic="t")
    flushing = threading.Thread(target=lambda: pytest.raises(SinkUnavailable, sink.flush))
    flushing.start()
    assert slow.entered.wait(10)
    added = 80
    with pytest.raises(SinkBackpressureError):
        for i in range(80, 200):  # 80 in flight + 20 new reach twice the bound
            sink.add(row(i), partition=0, offset=i, topic="t")
            added += 1
    assert added == 100
    slow.release.set()
    flushing.join(10)
    assert sink.buffered == 100  # the failed write's rows are back, nothing lost
    slow.down = False
    assert sink.flush() == 100


def test_a_flush_retried_after_failing_half_way_stores_each_row_once(client, settings, alerts_fail_once):
    sink = ClickHouseSink(settings.model_copy(update={"batch_rows": 7}), client=alerts_fail_once)
    for i in range(50):
        sink.add(row(i), partition=0, offset=i, topic="t")
    sink.add_alert(alert("key:k1:1", "warning", "2026-02-01T00:10:00Z"))
    with pytest.raises(SinkUnavailable):
        sink.flush()  # the event rows went in, the alert did not: everything is put back
    for i in range(50, 60):  # newer rows join the put-back batch (other slices, other tokens)
        sink.add(row(i), partition=0, offset=i, topic="t")
    sink.flush()
    db = settings.database
    assert count(client, f"SELECT count() FROM {db}.events") == 60
    assert count(client, f"SELECT uniqExact(kafka_offset) FROM {db}.events") == 60
    assert count(client, f"SELECT countMerge(events) FROM {db}.key_minute") == 60
    assert [r["alert_id"] for r in sink.alert_rows()] == ["key:k1:1"]


def test_exculpated_detections_have_their_own_table_and_survive_a_failed_flush(client, settings, alerts_fail_once):
    sink = ClickHouseSink(settings, client=alerts_fail_once)
    held = dict(alert("key:app:1", "info", "2026-02-01T00:10:00Z"),
                reasons=[{"signal": "exculpatory", "value": "app_conversations", "baseline": None, "weight": None}])
    sink.add_alert(alert("key:k1:1", "warning", "2026-02-01T00:10:00Z"))
    sink.add_exculpated(held)
    sink.add_exculpated(dict(held, events_seen=80))  # its update, replacing it by id
    with pytest.raises(SinkUnavailable):
        sink.flush()  # the alerts insert fails first: the exculpated detections are put back too
    assert sink.buffered == 3
    sink.flush()
    db = settings.database
    assert [r["alert_id"] for r in sink.alert_rows()] == ["key:k1:1"]
    assert client.query(f"SELECT alert_id, events_seen, reasons FROM {db}.exculpated FINAL").result_rows == [
        ("key:app:1", 80, '[{"signal": "exculpatory", "value": "app_conversations", "baseline": null, "weight": null}]')]
    assert sink.table_counts()["exculpated"] == 1


def test_backpressure_when_flushes_fall_behind_a_healthy_clickhouse(client, settings):
    # ClickHouse answers but the flushes are behind: the buffer stops at twice its bound.
    sink = ClickHouseSink(settings.model_copy(update={"max_buffered_rows": 50}), client=client)
    for i in range(100):
        sink.add(row(i), partition=0, offset=i, topic="t")
    with pytest.raises(SinkBackpressureError):
        sink.add(row(100), partition=0, offset=100, topic="t")
    with pytest.raises(SinkBackpressureError):
        sink.add_alert(alert("key:k1:1", "info", "2026-02-01T00:10:00Z"))
    assert sink.buffered == 100
    assert sink.flush() == 100
    assert sink.add(row(100), partition=0, offset=100, topic="t")


def test_detector_rows_store_the_key_signals_and_no_prompt_text(client, settings):
    from distillguard.models.events import parse_event
    from distillguard.models.pipeline import KeyPipeline

    pipeline, state, rows = KeyPipeline(), None, []
    for i in range(60):
        raw = ('{"schema":"llm.request.v1","event_id":"sig%d","ts":"2026-02-01T01:%02d:00Z","api_key_id":"ksig",'
               '"account_id":"a","model":"m","prompt":"Secret plan %d: think step by step and show all your reasoning.",'
               '"usage":{"input_tokens":20,"output_tokens":%d}}' % (i, i, i, 300 + 3 * i))
        result = pipeline.step(state, parse_event(raw.encode()), offset=i)
        state = result.state
        rows.append(result.row)
    sink = ClickHouseSink(settings, client=client)
    for i, r in enumerate(rows):
        sink.add(r, partition=3, offset=i, topic="signals")
    sink.flush()
    db = settings.database
    stored = client.query(f"SELECT style_share, output_yield, follow_up_share, template_repetition, topic_novelty, "
                          f"extraction_evidence "
                          f"FROM {db}.events WHERE api_key_id = 'ksig' ORDER BY ts DESC LIMIT 1").result_rows[0]
    last = rows[-1]
    expected = (last["style_share"], last["output_yield"], last["follow_up_share"], last["template_repetition"],
                last["topic_novelty"], last["extraction_evidence"])
    assert stored == pytest.approx(expected, abs=1e-6)
    assert stored[0] > 0.9 and 0 < stored[1] < 1 and stored[5] > 0
    text = client.query(f"SELECT * FROM {db}.events WHERE api_key_id = 'ksig'").result_rows
    assert "Secret plan" not in str(text)


def test_dead_letters_re_read_after_a_crash_are_stored_once(client, settings):
    sink = ClickHouseSink(settings, client=client)
    for offset in range(5):
        sink.add_dead_letter("not JSON: x", "llm.requests", 0, offset, 10)
    sink.add_dead_letter("not JSON: y", "llm.requests", 1, 0, 10)
    sink.flush()
    # A restarted worker (a new sink on the same database) re-reads from the committed offset.
    restarted = ClickHouseSink(settings, client=client)
    for offset in range(8):
        restarted.add_dead_letter("not JSON: x", "llm.requests", 0, offset, 10)
    restarted.add_dead_letter("processing failed: no position", "llm.requests", -1, -1, 10)
    assert restarted.buffered == 4  # offsets 5, 6, 7 and the one without a position
    restarted.flush()
    rows = client.query(f"SELECT partition, offset FROM {settings.database}.dlq WHERE partition >= 0 "
                        f"ORDER BY partition, offset").result_rows
    assert rows == [(0, o) for o in range(8)] + [(1, 0)]
    # A batch written once and then put back (a later insert of the same flush failed) is not
    # written twice.
    restarted.write({}, [], [[BASE_MS, "r", "r", "llm.requests", 0, 7, 1], [BASE_MS, "r", "r", "llm.requests", 0, 8, 1]])
    assert count(client, f"SELECT count() FROM {settings.database}.dlq WHERE partition = 0") == 9
