"""``distillguard replay`` applies the workers' allowed-lateness rule (DG_ALLOWED_LATENESS_S)."""
from __future__ import annotations

import json
import time

from distillguard.models.events import parse_event
from distillguard.models.pipeline import KeyPipeline
from distillguard.models.step import RequestProcessor
from distillguard.replay import run_replay

BASE_S = 1_769_904_000


def _line(i: int, offset_s: int) -> bytes:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_S + offset_s))
    return json.dumps({"schema": "llm.request.v1", "event_id": f"e{i}", "ts": ts, "api_key_id": "k",
                       "account_id": "a", "model": "m", "prompt": f"question {i} about tides"}).encode()


TIMES = [600 + 60 * i for i in range(20)] + [1500, 60, 0, 600 + 60 * 20]  # 1 within, 2 beyond 600 s


def test_replay_and_worker_agree_on_late_events(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(_line(i, t) for i, t in enumerate(TIMES)) + b"\n")
    summary = run_replay(events, tmp_path / "alerts.jsonl", progress=False, clusters=False,
                         allowed_lateness_ms=600_000)
    assert (summary.events, summary.late) == (len(TIMES), 2)
    assert run_replay(events, tmp_path / "a2.jsonl", progress=False, clusters=False).late == 0

    # The worker's rule (models.step) on the same events: the same two are late.
    proc = RequestProcessor(KeyPipeline(), source_topic="t", allowed_lateness_ms=600_000)
    state, late = None, []
    for offset, t in enumerate(TIMES):
        event = parse_event(_line(offset, t))
        if proc.is_late(state, event):
            late.append(t)
        else:
            state = proc.step(state, event, offset).state
    assert late == [60, 0]
