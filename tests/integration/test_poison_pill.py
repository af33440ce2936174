"""Poison pills through the real broker to a running worker (issue #17, finding 1).

Schema-valid records whose values do not fit their ClickHouse columns (output_tokens = 5e9
in a UInt32, a lone surrogate escaped in JSON, huge latency and ASN) used to fail every
flush after them: commits froze, later events were never stored, /health said ok. Now each
is stored (clamped) or dead-lettered, and everything after it is stored and committed.
"""
from __future__ import annotations

import json
import time

from distillguard.devtools.demo_traffic import demo_events, iter_encoded

from .conftest import metric, wait_for, wait_rows
from .test_faults import committed


def poison(serial: int, template: dict, **fields) -> tuple[bytes, bytes]:
    """A copy of a normal event with its own key and event id and ``fields`` set (dotted for nested)."""
    doc = json.loads(json.dumps(template))
    doc["event_id"], doc["api_key_id"] = f"poison-{serial}", f"poison_key_{serial}"
    for path, value in fields.items():
        outer, _, inner = path.partition(".")
        if inner:
            doc.setdefault(outer, {})[inner] = value
        else:
            doc[outer] = value
    # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as a producer would send it
    return doc["api_key_id"].encode("utf-8", "surrogatepass"), json.dumps(doc).encode()


def test_poison_records_are_clamped_or_dead_lettered_and_everything_after_is_stored(pipeline):
    events = demo_events(seed=7, users=30, campaign_events=300)
    normal = list(iter_encoded(events))
    first, rest = normal[:20], normal[20:520]
    template = events[0]
    clamped = [  # stored, with the value brought into its column
        poison(1, template, **{"usage.output_tokens": 5e9}),
        poison(2, template, **{"latency_ms": 2**40, "client.asn": 2**40}),
        poison(3, template, model="frontier-\ud800"),
    ]
    dead = [  # dead-lettered: an identity that cannot be stored; an event older than the events TTL
        poison(4, template, api_key_id="key-\ud800"),
        poison(5, template, ts="2024-01-01T00:00:00Z"),
    ]
    worker = pipeline.start_worker()
    pipeline.produce(first)
    wait_rows(worker, len(first))
    pipeline.produce(clamped + dead)
    pipeline.produce(rest)
    total = len(first) + len(clamped) + len(dead) + len(rest)

    # Commits reach the end of the topic: no record holds the group back.
    wait_for(lambda: committed(pipeline) == total, "every offset committed", timeout=120)
    tables = wait_rows(worker, len(first) + len(rest) + len(clamped))
    assert tables["events"] == len(first) + len(rest) + len(clamped)
    assert tables["key_minute_events"] == tables["events"] and tables["key_hour_events"] == tables["events"]
    assert tables["dlq"] == len(dead)
    health = worker.get("/health")
    assert health["status"] == "ok"
    assert health["counters"]["clamped"] == len(clamped)
    assert health["counters"]["clamped_fields"] == {"usage.output_tokens": 1, "latency_ms": 1, "client.asn": 1,
                                                    "model": 1}
    assert health["counters"]["dead_letter_reasons"] == {"api_key_id": 1, "sink_rejected": 1}
    assert metric(worker, "distillguard_sink_rejected_rows_total") == 1
    assert metric(worker, "distillguard_events_clamped_total") == 4

    # On the dead-letter topic: the original records, their keys and why.
    letters = pipeline.consume_all(pipeline.settings.dlq_topic, expect=len(dead))
    by_key = {m.key(): m for m in letters}
    assert set(by_key) == {key for key, _ in dead}
    for key, value in dead:
        assert by_key[key].value() == value
    reasons = {dict(m.headers())["dg.reason"].decode() for m in letters}
    assert reasons == {"api_key_id: not valid Unicode (lone surrogate)",
                       "sink_rejected: events: ts older than the events TTL (400 days)"}
    time.sleep(1.0)
    assert worker.get("/query/tables")["events"] == tables["events"]  # nothing stored twice
