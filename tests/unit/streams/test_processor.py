"""The worker's per-record step: bad input becomes a dead letter with a reason, never an exception."""
from __future__ import annotations

import json
from types import SimpleNamespace

from distillguard.models.events import RequestEvent
from distillguard.streams.processor import DeadLetter, RequestProcessor

NOW_S = 1_769_904_000.0  # 2026-02-01T00:00:00Z


def event(**over) -> bytes:
    doc = {"schema": "llm.request.v1", "event_id": "e1", "ts": "2026-02-01T00:00:00Z", "api_key_id": "k1",
           "account_id": "a1", "model": "m", "prompt": "hello"}
    doc.update(over)
    return json.dumps(doc).encode()


def processor(**kw) -> RequestProcessor:
    return RequestProcessor(pipeline=None, source_topic="llm.requests", clock=lambda: NOW_S, **kw)


def test_good_record_decodes():
    proc = processor()
    assert isinstance(proc.decode(event(), b"k1", 3, 17), RequestEvent)
    assert proc.counters.events == 1 and proc.counters.dead_letters == 0


def test_bad_record_is_dead_lettered_with_source_position():
    proc = processor()
    dead = proc.decode(b"{oops", b"k1", 2, 41)
    assert isinstance(dead, DeadLetter)
    headers = dict(dead.headers())
    assert headers["dg.reason"].startswith(b"not JSON")
    assert headers["dg.source.partition"] == b"2" and headers["dg.source.offset"] == b"41"
    assert dead.value == b"{oops" and dead.key == b"k1"
    assert proc.counters.dead_letter_reasons == {"not JSON": 1}


def test_tombstone_record_is_dead_lettered():
    dead = processor().decode(None, b"k1", 0, 0)
    assert isinstance(dead, DeadLetter) and "empty record" in dead.reason


def test_event_far_in_the_future_is_dead_lettered():
    proc = processor(max_future_ms=3_600_000)
    assert isinstance(proc.decode(event(ts="2026-02-01T00:30:00Z"), b"k1", 0, 0), RequestEvent)
    dead = proc.decode(event(ts="2026-02-03T00:00:00Z"), b"k1", 0, 1)
    assert isinstance(dead, DeadLetter) and "in the future" in dead.reason


def test_key_mismatch_is_counted_but_processed():
    proc = processor()
    assert isinstance(proc.decode(event(), b"other-key", 0, 0), RequestEvent)
    assert proc.counters.key_mismatch == 1


def test_processing_failure_becomes_dead_letter():
    proc = processor()
    message = SimpleNamespace(value=b"raw", key=b"k", partition=1, offset=9)
    dead = proc.failed(message, ZeroDivisionError("boom"))
    assert dead.reason == "processing failed: ZeroDivisionError: boom"
    assert dead.value == b"raw" and proc.counters.dead_letters == 1
