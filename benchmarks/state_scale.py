#!/usr/bin/env python3
"""Bytes of detector state per active key at 10k / 100k / 1M keys. Not a test.

    python benchmarks/state_scale.py [--keys 10000 --keys 100000 --keys 1000000]

For each size: real per-key states are made by the detector (the one event step,
``RequestProcessor.run``, over synthetic events, for up to ``--stepped`` distinct keys;
beyond that the same fixed-size states are reused under new key names, since a state's size does not depend on its
content), held the way a worker holds them (a dict of key bytes -> state bytes, which is
what the Faust table's in-memory store and its changelog carry), and measured with
``tracemalloc``. The cluster detector is fed one extraction-style link record per key and
measured the same way (each key with a payment method of its own, as paying customers
have): it is bounded (``max_keys``, ``max_links``), so its total stops growing.

Writes ``benchmarks/results/state_scale.json``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

from distillguard.models.clusters import ClusterDetector, LinkRecord
from distillguard.models.pipeline import STATE_BYTES, KeyPipeline
from distillguard.models.step import Record, RequestProcessor

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "state_scale.json"
T0 = 1_769_904_000_000


def _event(key: int, i: int) -> bytes:
    return json.dumps({
        "schema": "llm.request.v1", "event_id": f"e{key}-{i}", "ts": f"2026-02-01T00:{i % 60:02d}:00Z",
        "api_key_id": f"key_{key:07d}", "account_id": f"acct_{key:07d}", "model": "m",
        "prompt": f"Explain topic {key} step by step and show all your reasoning, case {i}.",
        "usage": {"input_tokens": 20, "output_tokens": 400},
        "client": {"ip": f"10.{key % 250}.{i % 250}.7", "asn": 64500, "user_agent": "bench"},
    }).encode()


def measure(n_keys: int, stepped: int) -> dict:
    # Through the one event step (models/step.py), as the workers and replay run it: 3 events a key.
    step = RequestProcessor(KeyPipeline(), source_topic="llm.requests")
    keys = min(n_keys, stepped)
    records = [Record(_event(k, i), offset=k * 3 + i, position=k * 3 + i) for k in range(keys) for i in range(3)]
    started = time.process_time()
    states = step.run(records, {}).states
    step_cpu = time.process_time() - started
    distinct = [states[f"key_{k:07d}"] for k in range(keys)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    # As the worker's table holds them: key bytes -> state bytes (copies, not shared objects).
    table = {f"key_{k:07d}".encode(): bytes(bytearray(distinct[k % len(distinct)])) for k in range(n_keys)}
    table_bytes = tracemalloc.get_traced_memory()[0] - base
    detector = ClusterDetector()
    base = tracemalloc.get_traced_memory()[0]
    for k in range(n_keys):
        detector.observe_link(LinkRecord(f"key_{k:07d}", f"acct_{k:07d}", T0 + k, 1.0, k * 7919, k * 104729,
                                         f"pf_{k:07d}", f"10.{k % 250}.{(k // 250) % 250}.0/24", 64500, 1))
    cluster_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    result = {"keys": n_keys, "stepped_keys": len(distinct), "state_bytes_serialized": STATE_BYTES,
              "table_bytes_per_key_in_memory": round(table_bytes / n_keys, 1),
              "table_mib": round(table_bytes / 2**20, 1),
              "cluster_detector_keys_tracked": len(detector._keys),
              "cluster_detector_mib": round(cluster_bytes / 2**20, 1),
              "cluster_detector_bytes_per_tracked_key": round(cluster_bytes / max(1, len(detector._keys)), 1),
              "step_cpu_us_per_event": round(step_cpu / max(1, 3 * len(distinct)) * 1e6, 1)}
    del table, detector
    gc.collect()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, action="append")
    parser.add_argument("--stepped", type=int, default=20_000, help="distinct keys run through the detector")
    args = parser.parse_args()
    sizes = args.keys or [10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        row = measure(n, args.stepped)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": "python benchmarks/state_scale.py " + " ".join(sys.argv[1:]),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
           "sizes": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
