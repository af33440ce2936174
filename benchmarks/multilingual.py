#!/usr/bin/env python3
"""What the multilingual signals cost per event, and how many prompts they change. Not a test.

    python benchmarks/multilingual.py [STREAM_DIR ...] [--events 20000]

For each stream (default: ../shared/data/streams/dev-s1; a stress stream built by
benchmarks/detection.py lives in var/streams/stress-NAME), featurizes its first events with
the multilingual signals on and off (``multilingual.families`` and ``script_tokens``
replaced by no-ops: the code before them), in interleaved chunks of 500 events timed in CPU
time (the box is shared: interleaving spreads the load over both), and reports us/event
each way, and the share of events whose style, families or topic sketch differ. Writes
``benchmarks/results/multilingual.json`` and ``multilingual.md``.

A micro-benchmark of one function (``features.featurize``), not of the event step: events are
decoded with ``parse_event`` outside the timing, and the step (``models/step.py``) is not run.
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from itertools import islice
from pathlib import Path

from distillguard.models import features, multilingual
from distillguard.models.events import parse_event

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
_ON = (multilingual.families, multilingual.script_tokens)
_OFF = (lambda zones, ascii_words=None: 0, lambda norm, limit=200: [])


def _use(pair) -> None:
    multilingual.families, multilingual.script_tokens = pair


def measure(stream: Path, limit: int, chunk: int = 500) -> dict:
    with gzip.open(stream / "events.jsonl.gz", "rb") as fh:
        events = [parse_event(line) for line in islice(fh, limit)]
    seconds = {"on": 0.0, "off": 0.0}
    results = {}
    for start in range(0, len(events), chunk):
        part = events[start:start + chunk]
        for name, pair in (("off", _OFF), ("on", _ON)) if start // chunk % 2 else (("on", _ON), ("off", _OFF)):
            _use(pair)
            t0 = time.process_time()
            out = [features.featurize(e) for e in part]
            seconds[name] += time.process_time() - t0
            results.setdefault(name, []).extend(out)
    _use(_ON)
    on, off = results["on"], results["off"]
    non_ascii = sum(not e.prompt.isascii() for e in events)
    return {"stream": stream.name, "events": len(events), "non_ascii_share": round(non_ascii / len(events), 4),
            "us_per_event_off": round(seconds["off"] / len(events) * 1e6, 1),
            "us_per_event_on": round(seconds["on"] / len(events) * 1e6, 1),
            "style_changed_share": round(sum(a.style != b.style for a, b in zip(on, off)) / len(events), 4),
            "style_raised_share": round(sum(a.style > b.style for a, b in zip(on, off)) / len(events), 4),
            "families_changed_share": round(sum(a.families != b.families for a, b in zip(on, off)) / len(events), 4),
            "sketch_changed_share": round(sum(a.simhash != b.simhash for a, b in zip(on, off)) / len(events), 4),
            "zero_sketch_share_off": round(sum(b.simhash == 0 for b in off) / len(events), 4),
            "zero_sketch_share_on": round(sum(a.simhash == 0 for a in on) / len(events), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("streams", nargs="*", type=Path, default=[SHARED / "data" / "streams" / "dev-s1"])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    rows = [measure(s, args.events) for s in args.streams]
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "command": "python benchmarks/multilingual.py " + " ".join(sys.argv[1:]),
               "machine": f"{platform.machine()}, Python {platform.python_version()}", "results": rows}
    (RESULTS / "multilingual.json").write_text(json.dumps(payload, indent=1))
    keys = list(rows[0])
    md = [f"# Multilingual signals: cost and reach\n\nCommand: `{payload['command']}`  ",
          f"Machine: {payload['machine']} (shared, loaded: compare on/off, not across runs).\n",
          "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    (RESULTS / "multilingual.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
