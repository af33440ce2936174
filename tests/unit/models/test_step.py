"""The batched event step (models.step): the same outputs whatever the batch size, and the
same as the worker's record-by-record path (decode, lateness, step, link record)."""
from __future__ import annotations

import json
import time

from distillguard.devtools.demo_traffic import demo_events, hydra_events
from distillguard.models.clusters import ClusterDetector, link_record
from distillguard.models.pipeline import KeyPipeline
from distillguard.models.step import DeadLetter, Record, RequestProcessor

LATENESS_MS = 600_000


def _records() -> list[Record]:
    events = sorted(demo_events(seed=7, users=12, campaign_events=260)
                    + hydra_events(seed=8, keys=6, per_key=12, start_hour=1.0, shared_payment=True),
                    key=lambda e: e["ts"])
    raws = [json.dumps(e).encode() for e in events]
    raws[40:40] = [b"{broken", b'{"schema":"llm.request.v1"}']  # dead letters
    raws[90:90] = [raws[80]]  # a duplicate event id
    late = dict(events[100], event_id="late-1",
                ts=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000)))  # long before its key's events
    raws[150:150] = [json.dumps(late).encode()]
    return [Record(raw, raw[:8], partition=i % 3, offset=i, position=i) for i, raw in enumerate(raws)]


def _processor(clusters: bool) -> RequestProcessor:
    return RequestProcessor(KeyPipeline(), source_topic="llm.requests", allowed_lateness_ms=LATENESS_MS,
                            clusters=ClusterDetector() if clusters else None)


def _batched(records: list[Record], size: int, clusters: bool = True):
    step, states = _processor(clusters), {}
    rows, alerts, links, dead = [], [], [], []
    for at in range(0, len(records), size):
        out = step.run(records[at:at + size], states)
        states.update(out.states)
        rows += out.rows
        alerts += out.alerts
        links += out.links
        dead += [(d.reason, d.offset) for d in out.dead_letters]
    return rows, alerts, links, dead, states, step.counters


def _record_by_record(records: list[Record]):
    """The worker's path, as streams/app.py's handler takes it."""
    step, states = _processor(False), {}
    rows, alerts, links, dead = [], [], [], []
    for record in records:
        event = step.decode(record.value, record.key, record.partition, record.offset)
        if isinstance(event, DeadLetter):
            dead.append((event.reason, event.offset))
            continue
        state = states.get(event.api_key_id)
        if step.is_late(state, event):
            result = step.step_late(state, event, record.position)
            if result.row is not None:
                rows.append((result.row, record.partition, record.position))
            continue
        result = step.step(state, event, record.position)
        if result.duplicate:
            continue
        rows.append((result.row, record.partition, record.position))
        alerts += [result.alert] if result.alert else []
        link = link_record(event, result, partition=record.partition, offset=record.position)
        links += [link] if link else []
        states[event.api_key_id] = result.state
    return rows, alerts, links, dead, states, step.counters


def test_a_batch_gives_what_the_worker_gives_record_by_record():
    records = _records()
    expected = _record_by_record(records)
    assert expected[1], "the demo campaign must alert"
    assert expected[5].late == 1 and expected[5].duplicates == 1 and len(expected[3]) == 2
    for size in (1, 7, len(records)):
        assert _batched(records, size, clusters=False) == expected


def test_the_cluster_detector_gets_the_link_records_in_order_and_its_alerts_follow_the_key_alerts():
    records = _records()
    rows, alerts, links, _, _, _ = _batched(records, 50)
    clusters = ClusterDetector()
    expected = []
    key_alerts = iter(a for a in _batched(records, 50, clusters=False)[1])
    for link in links:
        expected += clusters.observe_link(link)
    assert any(a["entity_type"] == "cluster" for a in alerts)
    assert [a for a in alerts if a["entity_type"] == "key"] == list(key_alerts)
    assert [a for a in alerts if a["entity_type"] != "key"] == expected


def _event(event_id: str, key: str = "k1") -> bytes:
    return json.dumps({"schema": "llm.request.v1", "event_id": event_id, "ts": "2026-02-01T00:00:00Z",
                       "api_key_id": key, "account_id": "a1", "model": "m", "prompt": f"question {event_id}"}).encode()


def test_a_record_applied_before_only_moves_its_keys_position():
    step = RequestProcessor(KeyPipeline(), source_topic="llm.requests")
    states = step.run([Record(_event("e1"), position=5)], {}).states
    out = step.run([Record(_event("e2"), position=9, applied=True)], states)
    assert out.rows == [] and out.alerts == [] and out.links == []
    assert step.pipeline.describe_state(out.states["k1"])["events"] == 1  # not learned
    assert step.pipeline.describe_state(out.states["k1"])["last_offset"] == 9
    assert step.counters.duplicates == 1 and step.counters.processed == 1
    # the same record delivered again, not marked: a duplicate by position (its id never reached the ring)
    again = step.run([Record(_event("e2"), position=9)], out.states)
    assert again.rows == [] and step.counters.duplicates == 2
    # a position below the key's is never moved back; a key with no state gets none
    lower = step.run([Record(_event("e3"), position=7, applied=True),
                      Record(_event("e4", "k2"), position=10, applied=True)], out.states)
    assert step.pipeline.describe_state(lower.states["k1"])["last_offset"] == 9 and "k2" not in lower.states
