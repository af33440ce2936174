"""``distillguard replay --from-kafka ... --clickhouse``: a backfill of a time window of the requests
topic on the real embedded broker, stored in the run's chDB as the workers store it."""
from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer

from distillguard.models.pipeline import DetectorConfig
from distillguard.replay import KafkaWindow, run_replay, time_window_ms
from distillguard.sinks.clickhouse import ClickHouseSink

BASE_MS = 1_769_904_000_000  # 2026-02-01T00:00:00Z
KEYS = [f"key-{n}" for n in range(6)]  # spread over the topic's 4 partitions
# Every key alerts from its first event: the window's alerts reach the alerts table too.
EAGER = DetectorConfig(min_events=1, thresholds=(0.01, 0.02, 0.03))


def _event(i: int, ts_ms: int) -> bytes:
    seconds, millis = divmod(ts_ms, 1000)
    ts = f"2026-02-01T00:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{millis:03d}Z"
    return json.dumps({"schema": "llm.request.v1", "event_id": f"e{i}", "ts": ts, "api_key_id": KEYS[i % len(KEYS)],
                       "account_id": "acct", "model": "m",
                       "prompt": f"Explain step by step your reasoning for question {i} about tides"}).encode()


@pytest.mark.parametrize("jobs", [1, 2], ids=["one process", "2 key processes"])
def test_backfill_scores_and_stores_exactly_the_window(pipeline, chdb_client, chdb_settings, tmp_path, jobs):
    # 90 events one second apart (record timestamp = event time); the window is seconds [30, 60):
    # 30 events, and a record that is not an event, timestamped inside the window.
    producer = Producer({"bootstrap.servers": pipeline.broker.bootstrap, "enable.idempotence": True})
    topic = pipeline.settings.requests_topic
    for i in range(90):
        key = KEYS[i % len(KEYS)]
        producer.produce(topic, key=key.encode(), value=_event(i, BASE_MS + i * 1000), timestamp=BASE_MS + i * 1000)
        if i == 45:
            producer.produce(topic, key=b"key-0", value=b"{not json", timestamp=BASE_MS + 45_500)
    assert producer.flush(30) == 0
    inside = {f"e{i}" for i in range(30, 60)}

    since_ms, until_ms = time_window_ms("2026-02-01T00:00:30Z", "2026-02-01T00:01:00Z")
    kafka = {"bootstrap.servers": pipeline.broker.bootstrap}
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    window = KafkaWindow(kafka, topic, since_ms, until_ms)
    summary = run_replay(window, tmp_path / "alerts.jsonl", dlq_path=tmp_path / "dlq.jsonl", progress=False,
                         config=EAGER, sink=sink, jobs=jobs)
    assert (summary.events, summary.bad_records) == (30, 1)

    db = chdb_settings.database
    stored = chdb_client.query(f"SELECT event_id, kafka_topic, kafka_offset FROM {db}.events").result_rows
    assert {row[0] for row in stored} == inside and len(stored) == 30
    assert {row[1] for row in stored} == {topic}
    dead = chdb_client.query(f"SELECT reason, topic FROM {db}.dlq").result_rows
    assert len(dead) == 1 and dead[0][0].startswith("not JSON") and dead[0][1] == topic
    (dead_line,) = (tmp_path / "dlq.jsonl").read_text().splitlines()
    assert json.loads(dead_line)["raw"] == "{not json" and "partition" in json.loads(dead_line)
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alerts and {a["entity_id"] for a in alerts if a["entity_type"] == "key"} == set(KEYS)
    # each key has 5 events in the window (15 in the topic): none from outside the window was scored
    assert max(a["events_seen"] for a in alerts if a["entity_type"] == "key") <= 5
    stored_alerts = chdb_client.query(f"SELECT alert_id, events_seen FROM {db}.alerts FINAL").result_rows
    assert {row[0] for row in stored_alerts} == {a["alert_id"] for a in alerts}

    # Run again (an operator retrying a backfill): every record is stored once.
    again = run_replay(KafkaWindow(kafka, topic, since_ms, until_ms), tmp_path / "again.jsonl", progress=False,
                       config=EAGER, sink=ClickHouseSink(chdb_settings, client=chdb_client), jobs=jobs)
    assert again.events == 30
    counts = sink.table_counts()
    assert (counts["events"], counts["dlq"], counts["alerts"]) == (30, 1, len(stored_alerts))
