"""Decoding a request record: msgspec's fast path against the validator alone.

    python benchmarks/decode.py                    # dev-s1 (../shared), every line
    python benchmarks/decode.py --stream var/streams/stress-multilingual/events.jsonl.gz

Decodes every line of the stream both ways (``parse_event(raw)`` and
``parse_event(raw, fast=False)``), checks that both give the same RequestEvent or the same
dead-letter reason, and times each (best of ``--rounds`` passes, CPU time of this process).
Writes ``benchmarks/results/decode.{json,md}``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

from distillguard.models.events import parse_event

ROOT = Path(__file__).resolve().parents[1]
DEV_STREAM = ROOT.parent / "shared" / "data" / "streams" / "dev-s1" / "events.jsonl.gz"
RESULTS = ROOT / "benchmarks" / "results"


def lines_of(path: Path) -> list[bytes]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        return [line.rstrip(b"\r\n") for line in f if line.strip()]


def best_time(lines: list[bytes], fast: bool, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        for line in lines:
            parse_event(line, fast=fast)
        best = min(best, time.process_time() - began)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", type=Path, default=DEV_STREAM)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-name", default="decode")
    args = parser.parse_args(argv)
    lines = lines_of(args.stream)
    differ = sum(parse_event(line) != parse_event(line, fast=False) for line in lines)
    slow, fast = best_time(lines, False, args.rounds), best_time(lines, True, args.rounds)
    result = {"command": "python benchmarks/decode.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "stream": str(args.stream), "records": len(lines), "different_results": differ,
              "validator_us_per_record": round(slow / len(lines) * 1e6, 2),
              "msgspec_us_per_record": round(fast / len(lines) * 1e6, 2), "speedup": round(slow / fast, 2),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.results_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = "\n".join([
        "# Decoding request records: msgspec fast path vs the validator alone", "",
        f"Command: `{result['command']}`", "",
        f"Stream: {result['stream']} ({len(lines):,} records). CPU time, best of {args.rounds} passes.", "",
        "| path | µs per record |", "|---|---|",
        f"| json + validator (`parse_event(raw, fast=False)`) | {result['validator_us_per_record']} |",
        f"| msgspec structs, validator on refusal (`parse_event(raw)`) | {result['msgspec_us_per_record']} |", "",
        f"Speed-up x{result['speedup']}; records decoded differently: {differ}.", "",
        f"Machine: {result['machine']}", ""])
    (RESULTS / f"{args.results_name}.md").write_text(md)
    print(md)
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
