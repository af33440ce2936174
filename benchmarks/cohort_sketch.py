#!/usr/bin/env python3
"""Would a richer per-key content sketch tell content-cohort heads from ordinary keys? Not a test.

    python benchmarks/cohort_sketch.py [--stream stress-content-cohort-aged] [--buckets 256 --buckets 1024]

The cohort detector judges a key by the 64 SimHash bits of its first prompts (``models.cohort``):
each bit a coin, the key's prompts likelier under a group's bit rates than under ordinary
traffic's by some nats a prompt. ``docs/measurements.md`` (Known gaps) names a richer sketch as
the next step for the heads it misses. This measures, side by side on one built stream, the
same fit on two sketches of each key's first 16 prompts:

* ``simhash``: the 64 bits of each prompt's SimHash (``features.featurize``), as the detector has;
* ``words-B``: each prompt's content words (``features._WORD`` minus ``_STOP``, the first 60)
  hashed into B buckets, each bucket a coin per prompt (a bag of words, not counts).

Fit: mean log-likelihood ratio per prompt of a key's prompts under a group's pooled sketch
(smoothed with 100 prompts of ordinary traffic) against ordinary traffic (every benign key's
first 16 prompts). Groups: for a cohort head, 12 random other heads of its campaign, and its 12
nearest among those and the benign keys; for a benign key (the false positives' side), 12
random benign keys and its 12 nearest benign keys (nearest: the cosine of the sketches' rates'
departures from ordinary traffic's, as the detector's nearest members). A sketch that helps puts
the heads' fits above the benign keys' nearest-12 fits.

The stream is one ``benchmarks/detection.py`` built (``var/streams/NAME``). Writes
``benchmarks/results/cohort-sketch.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import collections
import csv
import gzip
import json
import platform
import random
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distillguard.models.events import parse_event  # noqa: E402
from distillguard.models.features import _STOP, _WORD, featurize, normalise_prompt  # noqa: E402

FIRST = 16  # a key's first prompts: what the cohort detector sketches
GROUP = 12  # a free-form wave's floor of members (min_members; item families: min_item_members, 8)
PRIOR = 100.0  # prompts of ordinary traffic in every group's rates (profile_prior)


def sketches(path: Path, buckets: list[int]) -> dict[str, dict[str, list]]:
    """Per sketch name, per key: its first FIRST prompts' sets of set positions."""
    out: dict[str, dict[str, list]] = {"simhash": collections.defaultdict(list)}
    for b in buckets:
        out[f"words-{b}"] = collections.defaultdict(list)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            event = parse_event(line)
            if not hasattr(event, "api_key_id") or len(out["simhash"][event.api_key_id]) >= FIRST:
                continue
            simhash = featurize(event).simhash
            out["simhash"][event.api_key_id].append([i for i in range(64) if simhash >> i & 1])
            words = [w for w in _WORD.findall(normalise_prompt(event.prompt[:2000])) if w not in _STOP][:60]
            hashes = [zlib.crc32(w.encode()) for w in words]
            for b in buckets:
                out[f"words-{b}"][event.api_key_id].append(sorted({h % b for h in hashes}))
    return out


def fits(prompts: dict[str, list], size: int, labels: dict, rng: random.Random) -> dict[str, list[float]]:
    keys = [k for k, p in prompts.items() if len(p) >= 8 and k in labels]
    counts = {}
    for k in keys:
        c = np.zeros(size)
        for positions in prompts[k]:
            c[positions] += 1
        counts[k] = c
    n = {k: len(prompts[k]) for k in keys}
    benign = [k for k in keys if labels[k]["label"] == "benign"]
    ordinary = (sum(counts[k] for k in benign) + 1) / (sum(n[k] for k in benign) + 2)

    def fit(k, group) -> float:
        p = (sum(counts[g] for g in group) + PRIOR * ordinary) / (sum(n[g] for g in group) + PRIOR)
        c = counts[k]
        return float(c @ np.log(p / ordinary) + (n[k] - c) @ np.log((1 - p) / (1 - ordinary))) / n[k]

    def direction(k) -> np.ndarray:
        v = (counts[k] + 0.5) / (n[k] + 1) - ordinary
        return v / (np.linalg.norm(v) or 1.0)

    def nearest(k, pool) -> list:
        sims = np.array([direction(o) for o in pool]) @ direction(k)
        return [pool[i] for i in np.argsort(-sims, kind="stable")[:GROUP]]

    out = collections.defaultdict(list)
    for k in rng.sample(benign, min(400, len(benign))):
        others = [b for b in benign if b != k]
        out["benign: 12 random benign"].append(fit(k, rng.sample(others, GROUP)))
        out["benign: 12 nearest benign"].append(fit(k, nearest(k, others)))
    campaigns = collections.defaultdict(list)
    for k in keys:
        if labels[k]["label"] == "attack":
            campaigns[labels[k]["campaign_id"]].append(k)
    for k in keys:
        label = labels[k]
        if label["label"] != "attack" or "cohort" not in label["scenario"]:
            continue
        others = [o for o in campaigns[label["campaign_id"]] if o != k]
        if len(others) < GROUP:
            continue
        out[f"{label['scenario']}: 12 of its campaign"].append(fit(k, rng.sample(others, GROUP)))
        out[f"{label['scenario']}: 12 nearest of campaign + benign"].append(fit(k, nearest(k, others + benign)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="stress-content-cohort-aged", help="a stream under var/streams/")
    parser.add_argument("--buckets", type=int, action="append", help="word-sketch sizes (default 256, 1024)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results-name", default="cohort-sketch")
    args = parser.parse_args()
    stream = ROOT / "var" / "streams" / args.stream
    if not (stream / "events.jsonl.gz").exists():
        print(f"{stream} not built: run benchmarks/detection.py with its --stress first", file=sys.stderr)
        return 2
    labels = {r["api_key_id"]: r for r in csv.DictReader(open(stream / "labels.csv", encoding="utf-8"))}
    buckets = args.buckets or [256, 1024]
    rows = []
    for name, prompts in sketches(stream / "events.jsonl.gz", buckets).items():
        size = 64 if name == "simhash" else int(name.split("-")[1])
        for group, values in sorted(fits(prompts, size, labels, random.Random(args.seed)).items()):
            v = np.array(values)
            rows.append({"sketch": name, "group": group, "keys": len(v),
                         **{f"p{q}": round(float(np.percentile(v, q)), 2) for q in (10, 50, 90)},
                         "max": round(float(v.max()), 2)})
    command = "python benchmarks/cohort_sketch.py " + " ".join(sys.argv[1:])
    results = ROOT / "benchmarks" / "results"
    (results / f"{args.results_name}.json").write_text(json.dumps(
        {"command": command.strip(), "stream": args.stream, "machine": f"{platform.machine()}, Python "
         f"{platform.python_version()}", "rows": rows}, indent=1) + "\n")
    lines = [f"# Cohort heads against ordinary keys, by content sketch ({args.stream})", "",
             f"Command: `{command.strip()}`", "",
             "Fit: nats a prompt of a key's first 16 prompts under a group's pooled sketch against "
             "ordinary traffic (see the script's docstring).", "",
             "| sketch | key: group | keys | p10 | p50 | p90 | max |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['sketch']} | {r['group']} | {r['keys']} | {r['p10']} | {r['p50']} | {r['p90']} | {r['max']} |"
              for r in rows]
    (results / f"{args.results_name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
