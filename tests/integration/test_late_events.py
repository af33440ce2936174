"""Late and out-of-order events through a running worker (allowed lateness 600 s here).

Every event is stored and counted in the rollups by its own event time; events within the
allowed lateness are learned by the key's detector, later ones are not (counted as late).
"""
from __future__ import annotations

import json
import time
import urllib.request

from .conftest import counters_of

BASE_S = 1_769_904_000  # 2026-02-01T00:00:00Z


def _event(i: int, offset_s: int) -> tuple[bytes, bytes]:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_S + offset_s))
    doc = {"schema": "llm.request.v1", "event_id": f"late-{i}", "ts": ts, "api_key_id": "key_late",
           "account_id": "acct_late", "model": "m", "prompt": f"what is the capital of country {i}?"}
    return b"key_late", json.dumps(doc).encode()


def test_late_events_are_counted_by_event_time_but_not_learned(pipeline):
    in_order = [600 + 60 * i for i in range(30)]      # 00:10 .. 00:39
    out_of_order = [600 + 60 * 29 - 300]              # 5 min behind the newest: within the lateness
    late = [60, 600 + 60 * 29 - 3600, 0]                # 30+ min behind: beyond it
    times = in_order + out_of_order + late + [600 + 60 * 30]
    records = [_event(i, t) for i, t in enumerate(times)]
    worker = pipeline.start_worker(DG_ALLOWED_LATENESS_S="600")
    pipeline.produce(records)
    pipeline.wait_processed(worker, len(records))
    deadline = time.monotonic() + 60
    while worker.get("/query/tables")["events"] < len(records):
        assert time.monotonic() < deadline, worker.get("/query/tables")
        time.sleep(0.5)

    tables = worker.get("/query/tables")
    assert tables["events"] == len(records)
    assert tables["key_minute_events"] == tables["key_hour_events"] == len(records)
    (row,) = [r for r in worker.get("/summary?limit=50")["top_keys"] if r["api_key_id"] == "key_late"]
    assert row["events"] == len(records)
    info = worker.get("/query/state?key=key_late")["info"]
    assert info["events"] == len(records) - len(late)
    counters = counters_of(worker)
    assert counters["processed"] == len(records) and counters["late"] == len(late)
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert f"distillguard_events_late_total {float(len(late))}" in metrics
