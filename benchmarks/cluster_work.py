#!/usr/bin/env python3
"""CPU of the cluster work per event: building link records, and the cluster detector. Not a test.

    python benchmarks/cluster_work.py [EVENTS] [--out FILE]
    PYTHONPATH=/tmp/old-tree-path python benchmarks/cluster_work.py --out base.json   # an older tree

EVENTS defaults to ../shared/data/streams/dev-s1/events.jsonl.gz. Its events go through the
per-key pipeline in file order (as ``distillguard replay``, untimed); timed with the process
CPU clock: ``link_record`` for every event, then ``ClusterDetector.observe_link`` for every
record built, in order. Prints (and with ``--out`` writes) the seconds of each, the records
built, how many of them are under the linking style (they link by payment method only), and
a digest of the cluster detector's alerts, so that two trees' runs can be compared: the same
digest is the same alerts. Only names every tree since the split exports are used
(``distillguard.models.clusters``: ``ClusterDetector``, ``link_record``).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import time
from pathlib import Path

from distillguard.models.clusters import ClusterDetector, link_record
from distillguard.models.events import BadRecord, parse_event
from distillguard.models.pipeline import KeyPipeline

ROOT = Path(__file__).resolve().parents[1]
DEV_S1 = ROOT.parent / "shared" / "data" / "streams" / "dev-s1" / "events.jsonl.gz"


def measure(path: Path) -> dict:
    pipeline, states, records = KeyPipeline(), {}, []
    events = build_s = 0.0
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as src:
        for offset, line in enumerate(src):
            event = parse_event(line.rstrip(b"\r\n"))
            if isinstance(event, BadRecord):
                continue
            result = pipeline.step(states.get(event.api_key_id), event)
            if result.duplicate:
                continue
            states[event.api_key_id] = result.state
            events += 1
            began = time.process_time()
            record = link_record(event, result, partition=0, offset=offset)
            build_s += time.process_time() - began
            if record is not None:
                records.append(record)
    detector = ClusterDetector()
    digest = hashlib.sha256()
    began = time.process_time()
    alerts = [alert for record in records for alert in detector.observe_link(record)]
    observe_s = time.process_time() - began
    for alert in alerts:
        digest.update(json.dumps(alert, separators=(",", ":")).encode())
    below = sum(r.style < detector_min_style(detector) for r in records)
    return {"events": int(events), "link_records": len(records), "records_under_link_style": below,
            "link_record_s": round(build_s, 2), "observe_link_s": round(observe_s, 2),
            "link_record_us_per_event": round(1e6 * build_s / events, 1),
            "observe_link_us_per_event": round(1e6 * observe_s / events, 1),
            "alerts": len(alerts), "alerts_sha256": digest.hexdigest()}


def detector_min_style(detector) -> float:
    config = getattr(detector, "config", detector)  # (before the split: an attribute of the detector)
    return config.min_style


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", nargs="?", type=Path, default=DEV_S1)
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = parser.parse_args()
    figures = {"stream": args.events.name if args.events != DEV_S1 else "dev-s1", **measure(args.events)}
    print(json.dumps(figures, indent=1))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
