"""The worker's per-record step: bad input becomes a dead letter with a reason, never an exception."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

from distillguard.models.events import RequestEvent
from distillguard.models.step import DeadLetter, RequestProcessor

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


# -- late and out-of-order events (DG_ALLOWED_LATENESS_S) ---------------------------------
def _key_events(times_s: list[int], **over) -> list[RequestEvent]:
    from distillguard.models.events import parse_event

    out = []
    for i, t in enumerate(times_s):
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW_S + t))
        out.append(parse_event(event(event_id=f"e{i}", ts=ts, prompt=f"question number {i} about rivers", **over)))
    return out


def _run(proc: RequestProcessor, events: list[RequestEvent]):
    state, results = None, []
    for offset, ev in enumerate(events):
        if proc.is_late(state, ev):
            result = proc.step_late(state, ev, offset)
            results.append(("late", result))
        else:
            result = proc.step(state, ev, offset)
            results.append(("step", result))
        state = result.state
    return state, results


def test_event_within_allowed_lateness_is_learned():
    from distillguard.models.pipeline import KeyPipeline

    proc = RequestProcessor(KeyPipeline(), source_topic="t", allowed_lateness_ms=600_000, clock=lambda: NOW_S)
    state, results = _run(proc, _key_events([0, 60, 120, 120 - 500]))  # 500 s out of order: allowed
    assert [kind for kind, _ in results] == ["step"] * 4
    assert KeyPipeline().describe_state(state)["events"] == 4
    assert proc.counters.late == 0 and proc.counters.processed == 4


def test_event_beyond_allowed_lateness_is_stored_not_learned():
    from distillguard.models.pipeline import KeyPipeline, decode_state

    pipe = KeyPipeline()
    proc = RequestProcessor(pipe, source_topic="t", allowed_lateness_ms=600_000, clock=lambda: NOW_S)
    events = _key_events([0, 60, 120, 120 - 601, 180])
    state, results = _run(proc, events)
    kinds = [kind for kind, _ in results]
    assert kinds == ["step", "step", "step", "late", "step"]
    _, late = results[3]
    before = results[2][1].state
    # Stored with its own event time (rollups count it in its own minute), the key's score as
    # it was, no alert; the detector state is exactly what it was before the late event.
    assert late.row["ts_ms"] == events[3].ts_ms and late.row["event_id"] == "e3"
    assert late.row["score"] == decode_state(before).score and late.alert is None
    assert late.state == before and late.features is None
    assert pipe.describe_state(state)["events"] == 4  # 5 events, the late one not learned
    assert decode_state(state).last_ts == events[4].ts_ms
    assert proc.counters.late == 1 and proc.counters.processed == 5


def test_late_duplicate_is_a_duplicate():
    from distillguard.models.pipeline import KeyPipeline

    proc = RequestProcessor(KeyPipeline(), source_topic="t", allowed_lateness_ms=0, clock=lambda: NOW_S)
    first, second = _key_events([0, 60])
    state = proc.step(None, first, 0).state
    state = proc.step(state, second, 1).state
    replayed = proc.step_late(state, first, 2) if proc.is_late(state, first) else None
    assert replayed is not None and replayed.duplicate and replayed.row is None and replayed.state == state


def test_no_lateness_limit_learns_everything():
    from distillguard.models.pipeline import KeyPipeline

    proc = RequestProcessor(KeyPipeline(), source_topic="t", clock=lambda: NOW_S)
    _, results = _run(proc, _key_events([0, 86_400, 0 + 1]))
    assert [kind for kind, _ in results] == ["step"] * 3


def test_oversized_record_is_dead_lettered_as_a_prefix_with_its_size():
    proc = processor(dlq_max_bytes=1000)
    raw = b"{" + b"x" * 5000
    dead = proc.decode(raw, b"k", 0, 3)
    headers = dict(dead.headers())
    assert dead.value == raw[:1000] and dead.size == 5001
    assert headers["dg.truncated"] == b"1" and headers["dg.original.size"] == b"5001"
    small = proc.decode(b"{oops", b"k", 0, 4)
    assert small.value == b"{oops" and small.size == 5 and "dg.truncated" not in dict(small.headers())


def test_fast_last_event_time_agrees_with_the_detector_state():
    from distillguard.models.pipeline import KeyPipeline, decode_state
    from distillguard.models.step import _last_ts

    proc = RequestProcessor(KeyPipeline(), source_topic="t", clock=lambda: NOW_S)
    state, newest = None, 0
    for offset, ev in enumerate(_key_events([0, 90, 45, 4000])):
        state = proc.step(state, ev, offset).state
        newest = max(newest, ev.ts_ms)  # an out-of-order event does not wind the clock back
        assert _last_ts(state) == decode_state(state).last_ts == newest
    assert _last_ts(b"\x00junk") == decode_state(b"\x00junk").last_ts == 0.0  # unknown layout: a new key


def test_clamped_fields_are_counted():
    proc = processor()
    ev = proc.decode(event(usage={"output_tokens": 5_000_000_000}, model="m\ud800"), b"k1", 0, 1)
    assert isinstance(ev, RequestEvent) and ev.output_tokens == 2**32 - 1
    proc.decode(event(usage={"output_tokens": 10**10}), b"k1", 0, 2)
    proc.decode(event(), b"k1", 0, 3)
    assert proc.counters.clamped == 2
    assert proc.counters.clamped_fields == {"usage.output_tokens": 2, "model": 1}


def test_rows_the_sink_refused_become_dead_letters_with_their_source_record():
    from distillguard.sinks.clickhouse import RejectedRow

    proc = processor(dlq_max_bytes=1000)
    messages = [SimpleNamespace(partition=2, offset=o, key=b"k%d" % o, value=b"record %d" % o) for o in range(5)]
    rejected = [RejectedRow("events", "sink_rejected: events: ArrowInvalid: too large", "llm.requests", 2, 3),
                RejectedRow("alerts", "sink_rejected: alerts: bad", "", -1, -1, "key:k1:1"),
                RejectedRow("events", "sink_rejected: events: gone", "llm.requests", 2, 9)]
    letters = proc.rejected_by_sink(rejected, messages)
    assert [(d.key, d.value, d.partition, d.offset) for d in letters] == [(b"k3", b"record 3", 2, 3),
                                                                       (None, b"", 2, 9)]
    headers = dict(letters[0].headers())
    assert headers["dg.reason"].startswith(b"sink_rejected: events: ArrowInvalid")
    assert headers["dg.source.offset"] == b"3" and headers["dg.source.topic"] == b"llm.requests"
    assert proc.counters.dead_letters == 2 and proc.counters.dead_letter_reasons == {"sink_rejected": 2}
