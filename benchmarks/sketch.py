#!/usr/bin/env python3
"""Which fixed-size text sketch for a prompt: SimHash, MinHash or hashed word counts. Not a test.

    python benchmarks/sketch.py [--pairs 20000] [--seed 1]

The detector keeps, per key, a ring of the last 8 prompt sketches (topic novelty: how new a
prompt's content is against the key's recent ones) and a coarse topic bucket of each prompt
(the top bits of its sketch). A sketch must therefore be small (8 of them in a key's state,
which must stay under 2 KB), cheap (it is computed for every event) and tell apart:

* a prompt and the same prompt reworded a little (a user re-sending with "Hi!", a typo, a
  suffix) from two unrelated prompts: *near-duplicate AUC*;
* two prompts on one subject from prompts on two different subjects (MMLU items, grouped by
  their 57 subjects in the shared corpora): *topic AUC*, and for the coarse bucket, how much
  more often two same-subject prompts share it than two prompts of different subjects.

Every sketch is built from the same content words (``features._WORD`` minus ``_STOP``, the
first 200), so only the sketch differs. The prompts are read from ``../shared/data/prompts``
at run time (never copied into the project). AUC is the probability that a random positive
pair is more similar than a random negative pair (ties count half).

Writes ``benchmarks/results/sketch.json`` and ``sketch.md``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import platform
import random
import sys
import time
import zlib
from pathlib import Path

from distillguard.models.features import _STOP, _WORD, _simhash

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT.parent / "shared" / "data" / "prompts"
RESULTS = ROOT / "benchmarks" / "results"
MINHASH_K = 16
BUCKETS = 256


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP][:200]


def simhash(ws: list[str]) -> int:
    return _simhash(ws)


def simhash_similarity(a: int, b: int) -> float:
    return 1.0 - (a ^ b).bit_count() / 64.0


_SEEDS = [zlib.crc32(str(i).encode()) for i in range(MINHASH_K)]


def minhash(ws: list[str]) -> tuple[int, ...]:
    if not ws:
        return (0,) * MINHASH_K
    raw = [w.encode() for w in set(ws)]
    return tuple(min(zlib.crc32(r, seed) for r in raw) for seed in _SEEDS)


def minhash_similarity(a: tuple, b: tuple) -> float:
    return sum(x == y for x, y in zip(a, b)) / MINHASH_K


def hashed_counts(ws: list[str]) -> list[int]:
    v = [0] * BUCKETS
    for w in ws:
        v[zlib.crc32(w.encode()) % BUCKETS] += 1
    return v


def cosine(a: list[int], b: list[int]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


SKETCHES = {
    # name: (build, similarity, bytes per sketch in a key's state)
    "simhash-64": (simhash, simhash_similarity, 8),
    f"minhash-{MINHASH_K}x32": (minhash, minhash_similarity, 4 * MINHASH_K),
    f"hashed-counts-{BUCKETS}x16": (hashed_counts, cosine, 2 * BUCKETS),
}

_PREFIXES = ["Hi! ", "Hello, ", "Quick one: ", "Please help: ", "hey ", "Can you help? "]
_SUFFIXES = [" Thanks!", " Keep it short.", " Explain simply.", " Use bullet points.", " Please.", " thx"]


def reworded(text: str, rng: random.Random) -> str:
    """The same request re-sent as people do: a greeting, a closing, a typo, lower case."""
    if rng.random() < 0.5:
        text = rng.choice(_PREFIXES) + text
    if rng.random() < 0.5:
        text = text + rng.choice(_SUFFIXES)
    if rng.random() < 0.5 and len(text) > 10:
        i = rng.randrange(len(text) - 1)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if rng.random() < 0.3:
        text = text.lower()
    return text


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(a positive pair is more similar than a negative one), ties half (rank statistic)."""
    scored = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2  # 1-based ranks i+1 .. j
        rank_sum += mean_rank * sum(1 for _, label in scored[i:j] if label)
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def load(corpus: str) -> list[dict]:
    with gzip.open(PROMPTS / f"{corpus}.jsonl.gz", "rt", encoding="utf-8") as src:
        return [json.loads(line) for line in src]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20_000, help="positive and negative pairs per test")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    # near duplicates: prompts of ordinary users (two chat corpora), reworded
    chats = [r["text"] for c in ("sharegpt", "oasst") for r in load(c) if len(words(r["text"])) >= 5]
    near = [(t, reworded(t, rng)) for t in rng.sample(chats, min(args.pairs, len(chats)))]
    unrelated = [tuple(rng.sample(chats, 2)) for _ in range(len(near))]
    # topics: MMLU items by subject (the shared preamble naming the subject removed: it would
    # make the subject trivially readable)
    items: dict[str, list[str]] = {}
    for r in load("mmlu"):
        text = r["text"].split("\n\n", 1)[-1]
        items.setdefault(r["group"], []).append(text)
    subjects = [s for s, texts in items.items() if len(texts) >= 2]
    same = [tuple(rng.sample(items[s], 2)) for s in (rng.choice(subjects) for _ in range(args.pairs))]
    different = [(rng.choice(items[a]), rng.choice(items[b]))
                 for a, b in (rng.sample(subjects, 2) for _ in range(args.pairs))]

    rows = []
    for name, (build, similarity, size) in SKETCHES.items():
        texts = [t for pair in near + unrelated + same + different for t in pair]
        tokenized = [words(t) for t in texts]
        started = time.perf_counter()
        sketches = [build(ws) for ws in tokenized]
        build_us = (time.perf_counter() - started) / len(tokenized) * 1e6
        pairs = list(zip(sketches[0::2], sketches[1::2]))
        n1, n2, n3 = len(near), len(near) + len(unrelated), len(near) + len(unrelated) + len(same)
        sims = [similarity(a, b) for a, b in pairs]
        row = {"sketch": name, "bytes": size, "ring_of_8_bytes": 8 * size, "build_us_per_prompt": round(build_us, 1),
               "near_duplicate_auc": round(auc(sims[:n1], sims[n1:n2]), 4),
               "topic_auc": round(auc(sims[n2:n3], sims[n3:]), 4)}
        if name.startswith("simhash"):
            # the coarse topic bucket the detector keeps (the sketch's top 8 bits)
            bucket = [(a >> 56 == b >> 56) for a, b in pairs]
            same_rate = sum(bucket[n2:n3]) / (n3 - n2)
            diff_rate = sum(bucket[n3:]) / (len(pairs) - n3)
            row["bucket_shared_same_subject"] = round(same_rate, 4)
            row["bucket_shared_different_subjects"] = round(diff_rate, 4)
            row["bucket_lift"] = round(same_rate / diff_rate, 2) if diff_rate else None
        rows.append(row)
        print(json.dumps(row), flush=True)

    out = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": "python benchmarks/sketch.py " + " ".join(sys.argv[1:]),
           "machine": f"{platform.machine()}, Python {platform.python_version()}",
           "pairs": {"near_duplicate": len(near), "unrelated": len(unrelated), "same_subject": len(same),
                     "different_subjects": len(different)},
           "sketches": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sketch.json").write_text(json.dumps(out, indent=1))
    lines = ["# Prompt sketch benchmark", "", f"Command: `{out['command']}`", "",
             "| sketch | bytes (ring of 8) | µs per prompt | near-duplicate AUC | topic AUC (MMLU subjects) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['sketch']} | {r['bytes']} ({r['ring_of_8_bytes']}) | {r['build_us_per_prompt']} | "
                     f"{r['near_duplicate_auc']} | {r['topic_auc']} |")
    sim = rows[0]
    lines += ["", f"SimHash's coarse bucket (top 8 bits): two same-subject prompts share it "
              f"{sim['bucket_shared_same_subject']:.2%} of the time, two of different subjects "
              f"{sim['bucket_shared_different_subjects']:.2%} (lift {sim['bucket_lift']})."]
    (RESULTS / "sketch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
