"""Kafka -> Faust worker -> alerts topic + DLQ + ClickHouse, on the embedded broker and chDB."""
from __future__ import annotations

import json
import time

from distillguard.devtools.demo_traffic import bad_records, demo_events, iter_encoded

from .conftest import wait_for

BAD = bad_records() + [
    b"\xff\xfe not utf-8",
    json.dumps({"schema": "llm.request.v1", "event_id": "e-big", "ts": "2026-02-01T00:00:00Z", "api_key_id": "k",
                "account_id": "a", "model": "m", "prompt": "z" * 300_000}).encode(),
    json.dumps({"schema": "llm.request.v1", "event_id": "e-type", "ts": "2026-02-01T00:00:00Z",
                "api_key_id": "k", "account_id": "a", "model": "m", "prompt": ["list"]}).encode(),
]


def test_pipeline_end_to_end(pipeline):
    events = demo_events(seed=11, users=40, campaign_events=500)
    records = list(iter_encoded(events))
    for i, raw in enumerate(BAD):  # bad records spread through the stream
        records.insert(len(records) * (i + 1) // (len(BAD) + 1), (b"bad-%d" % i, raw))
    prompts = {e["prompt"] for e in events}
    worker = pipeline.start_worker()
    pipeline.produce(records)
    counters = pipeline.wait_processed(worker, len(records))
    assert counters["dead_letters"] == len(BAD)
    assert counters["processed"] == len(events)

    # Every bad record is on the DLQ with the original bytes and a reason.
    dead = pipeline.consume_all(pipeline.settings.dlq_topic, expect=len(BAD))
    assert sorted(m.value() for m in dead) == sorted(BAD)
    for message in dead:
        headers = dict(message.headers())
        assert headers["dg.reason"], headers
        assert int(headers["dg.source.offset"]) >= 0

    # The sweep raises an alert v1 on the alerts topic; no benign demo user is accused.
    alerts = pipeline.alerts()
    accused = {a["entity_id"] for a in alerts if a["entity_type"] == "key"}
    assert "demo_sweeper" in accused
    assert not {k for k in accused if k.startswith("demo_user_")}
    # One incident per key: re-sends only for escalation, all under the same alert id.
    sweeper_ids = {a["alert_id"] for a in alerts if a["entity_id"] == "demo_sweeper"}
    assert len(sweeper_ids) == 1
    for alert in alerts:
        assert alert["schema"] == "distill.alert.v1" and alert["reasons"]
        assert not any(p in json.dumps(alert) for p in prompts)

    # ClickHouse (served by the worker that owns the embedded chDB): rows, rollups, alerts.
    # (stored by the sink's next flush, up to a second after processing: wait for it, then
    # read again after the rows settled, so a duplicate would show as one too many)
    wait_for(lambda: stored_all(worker.get("/query/tables"), len(events)), "events, dead letters and alerts stored")
    time.sleep(2.0)
    worker_state = worker.get("/query/tables")
    assert worker_state["events"] == len(events)
    assert worker_state["dlq"] == len(BAD)
    assert worker_state["key_minute_events"] == len(events)
    assert worker_state["alerts"] >= 1
    top = worker.get("/summary?limit=5")["top_keys"]
    assert top and top[0]["api_key_id"] == "demo_sweeper"
    stored = worker.get("/alerts?limit=50")["alerts"]
    assert "demo_sweeper" in {a["entity_id"] for a in stored}
    # No prompt text at rest: no column is named like one, and no stored value holds one.
    assert not [c for c in worker_state["columns"] if "prompt" in c and not c.endswith(".prompt_chars")]
    assert not any(p in json.dumps(stored) for p in prompts)


def stored_all(tables: dict, events: int) -> bool:
    return tables["events"] >= events and tables["dlq"] >= len(BAD) and tables["alerts"] >= 1 \
        and tables["key_minute_events"] >= events
