#!/usr/bin/env python3
"""Do cluster incident ids depend on how the input partitions interleave? Not a test.

    python benchmarks/cluster_ids.py [EVENTS] [--partitions 8] [--seeds 2]

EVENTS defaults to ../shared/data/streams/dev-s1/events.jsonl.gz. Its events go through
the one event step (``RequestProcessor.run``, as the workers and ``distillguard replay``) in
file order, each record tagged with an input partition (by key) and offset; then the cluster detector is fed those records
in time order (replay) and in interleavings a worker produces (each partition's records in
order): partitions drained from a backlog in chunks of 50-1,500 records, one partition
30 minutes to 10 hours behind, partitions merged at random a few hundred records at a
time, and a kill (a backlog, 3,000 records sent again, the rest in another interleaving).
For each: how many of replay's cluster incident ids it raises, how many others, and how
many cluster alerts (incident opened or updated) it sends against replay's.

Writes ``benchmarks/results/cluster_ids.json``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import zlib
from pathlib import Path

from distillguard.models.clusters import ClusterDetector, LinkRecord
from distillguard.models.pipeline import KeyPipeline
from distillguard.models.step import Record, RequestProcessor

ROOT = Path(__file__).resolve().parents[1]
DEV_S1 = ROOT.parent / "shared" / "data" / "streams" / "dev-s1" / "events.jsonl.gz"
RESULTS = ROOT / "benchmarks" / "results" / "cluster_ids.json"


def link_records(path: Path, partitions: int) -> list[LinkRecord]:
    """The link records of ``path``'s events, made by the one event step (models/step.py) as the
    workers make them: each line a record of the partition its key hashes to, at the next offset."""
    offsets, records = [0] * partitions, []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as src:
        for line in src:
            key = _key_of(line)
            partition = zlib.crc32(key) % partitions if key is not None else 0
            records.append(Record(line.rstrip(b"\r\n"), key, partition, offsets[partition], offsets[partition]))
            offsets[partition] += 1
    return RequestProcessor(KeyPipeline(), source_topic="llm.requests").run(records, {}).links


def _key_of(line: bytes) -> bytes | None:
    """The record's Kafka key, as the gateway sets it (its api_key_id); None for a bad line."""
    try:
        return json.loads(line)["api_key_id"].encode("utf-8", "surrogatepass")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _queues(records):
    queues: dict[int, list] = {}
    for r in records:
        queues.setdefault(r.source_partition, []).append(r)
    return list(queues.values())


def backlog(records, rnd):
    queues, out = _queues(records), []
    while any(queues):
        for q in queues:
            n = rnd.randint(50, 1500)
            out += q[:n]
            del q[:n]
    return out


def partition_behind(records, rnd):
    late, lag = rnd.randrange(8), rnd.choice([30, 120, 600]) * 60_000
    return sorted(records, key=lambda r: r.ts_ms + (lag if r.source_partition == late else 0))


def random_merge(records, rnd):
    queues, out = _queues(records), []
    while any(queues):
        q = rnd.choices(queues, [len(q) for q in queues])[0]
        n = rnd.randint(1, 400)
        out += q[:n]
        del q[:n]
    return out


def killed(records, rnd):
    cut = rnd.randrange(len(records) // 4, 3 * len(records) // 4)
    resent = [r for r in records[max(0, cut - 3000):cut] if r.source_partition % 2]
    return backlog(records[:cut], rnd) + resent + backlog(records[cut:], rnd)


INTERLEAVINGS = {"backlog": backlog, "one partition behind": partition_behind, "random merge": random_merge,
                 "kill and resend": killed}


def cluster_alerts(records) -> list[dict]:
    detector = ClusterDetector()
    return [a for r in records for a in detector.observe_link(r) if a["entity_type"] == "cluster"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", nargs="?", type=Path, default=DEV_S1)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    records = link_records(args.events, args.partitions)
    replayed = cluster_alerts(records)
    expected = {a["alert_id"] for a in replayed}
    rows = []
    for name, interleave in INTERLEAVINGS.items():
        for seed in range(1, args.seeds + 1):
            streamed = cluster_alerts(interleave(list(records), random.Random(seed)))
            got = {a["alert_id"] for a in streamed}
            rows.append({"interleaving": name, "seed": seed, "replay_ids": len(expected),
                         "same_ids": len(got & expected), "other_ids": len(got - expected),
                         "alerts": len(streamed), "alerts_vs_replay": round(len(streamed) / len(replayed), 2)})
            print(f"{name:22s} seed {seed}: {rows[-1]['same_ids']}/{len(expected)} of replay's incident ids, "
                  f"{rows[-1]['other_ids']} others; {len(streamed)} cluster alerts ({rows[-1]['alerts_vs_replay']}x "
                  f"replay's {len(replayed)})", flush=True)
    RESULTS.write_text(json.dumps({"events": str(args.events), "link_records": len(records),
                                   "replay_cluster_alerts": len(replayed), "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
