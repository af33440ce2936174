#!/usr/bin/env python3
"""Time spent in Python's garbage collector during a replay: its default thresholds against
``distillguard.gc_tuning`` (what ``replay`` and ``worker`` set). Not a test.

    python benchmarks/gc.py [--rounds 3] [--stress multilingual ...]

Each run is one ``run_replay`` in a process of its own (one process: ``--jobs 1``), the two
settings taking turns within every round, so that the load of a shared machine falls on both
alike. A ``gc.callbacks`` hook times every collection, by generation. Recorded per run: time
in the collector, collections per generation, the process's CPU time, its peak resident
memory (what fewer collections could cost), and a digest of the alerts (they must not
differ). The stream: dev-s1 by default (``../shared``: benchmarks only), and every
``--stress`` stream as ``benchmarks/detection.py`` builds it into ``var/streams/``
(``replay_speed.stress_stream``).

Writes ``benchmarks/results/gc.json`` and ``.md`` (``--results-name``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("defaults", "tuned")


def _child(setting: str, stream: str, alerts: str) -> None:
    """One replay under ``setting``; prints its figures as one JSON line."""
    import gc
    import resource
    import time

    sys.path.insert(0, str(ROOT))
    from distillguard.gc_tuning import tune_gc
    from distillguard.replay import run_replay

    spent, runs, began = [0.0, 0.0, 0.0], [0, 0, 0], [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent[info["generation"]] += time.perf_counter() - began[0]
            runs[info["generation"]] += 1

    if setting == "tuned":
        tune_gc()
    gc.callbacks.append(timed)
    cpu = time.process_time()
    summary = run_replay(stream, Path(alerts), progress=False, jobs=1)
    cpu = time.process_time() - cpu
    print(json.dumps({"setting": setting, "events": summary.events, "cpu_s": round(cpu, 3),
                      "gc_s": round(sum(spent), 3), "gc_s_by_generation": [round(s, 3) for s in spent],
                      "collections": runs, "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "alerts_sha256": hashlib.sha256(Path(alerts).read_bytes()).hexdigest()}))


def _run(setting: str, stream: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", setting, str(stream), str(out)],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _streams(args) -> list[tuple[str, Path]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from replay_speed import DEV_STREAM, stress_stream  # (the same streams, built by detection.py's builder)

    return [("dev-s1", DEV_STREAM)] + [(f"stress-{name}", stress_stream(name)) for name in args.stress]


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(*sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stress", action="append", default=[], help="also this stress stream")
    parser.add_argument("--results-name", default="gc")
    args = parser.parse_args()
    scratch = ROOT / "var" / "gc-bench"
    scratch.mkdir(parents=True, exist_ok=True)
    results = {"command": "python benchmarks/gc.py " + " ".join(sys.argv[1:]), "machine": platform.machine(),
               "python": platform.python_version(), "streams": {}}
    for name, path in _streams(args):
        runs = []
        for round_ in range(args.rounds):
            order = SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]
            for setting in order:
                run = _run(setting, path, scratch / f"{name}-{setting}.jsonl")
                run["round"] = round_ + 1
                runs.append(run)
                print(f"{name} round {round_ + 1} {setting}: {run['gc_s']} s in the collector, "
                      f"{run['cpu_s']} s CPU, {run['max_rss_mb']} MB", flush=True)
        results["streams"][name] = runs
    out = ROOT / "benchmarks" / "results" / args.results_name
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(_markdown(results))
    print(out.with_suffix(".md").read_text())
    return 0


def _markdown(results: dict) -> str:
    lines = ["# Time in the garbage collector: Python's defaults against `gc_tuning`", "",
             f"Command: `{results['command']}`", "",
             "One `run_replay` (one process) per row; the settings take turns in every round. "
             "CPU: the process's CPU time of the replay; collector: the time inside collections "
             "(`gc.callbacks`); RSS: peak resident memory.", ""]
    for name, runs in results["streams"].items():
        lines += [f"## {name} ({runs[0]['events']:,} events)", "",
                  "| round | setting | collector (s) | collections gen 0/1/2 | CPU (s) | peak RSS (MB) |",
                  "|---|---|---|---|---|---|"]
        for run in runs:
            lines.append(f"| {run['round']} | {run['setting']} | {run['gc_s']:.2f} | "
                         f"{'/'.join(map(str, run['collections']))} | {run['cpu_s']:.1f} | {run['max_rss_mb']:.0f} |")
        by = {s: [r for r in runs if r["setting"] == s] for s in SETTINGS}
        gc_share = {s: statistics.median(r["gc_s"] / r["cpu_s"] for r in by[s]) for s in SETTINGS}
        cpu_ratio = statistics.median(t["cpu_s"] / d["cpu_s"] for d, t in zip(by["defaults"], by["tuned"]))
        rss = {s: max(r["max_rss_mb"] for r in by[s]) for s in SETTINGS}
        same = len({r["alerts_sha256"] for r in runs}) == 1
        lines += ["", f"Median share of CPU in the collector: defaults {gc_share['defaults']:.1%}, "
                      f"tuned {gc_share['tuned']:.1%}. CPU tuned / defaults, same round, median: {cpu_ratio:.3f}. "
                      f"Peak RSS: defaults {rss['defaults']:.0f} MB, tuned {rss['tuned']:.0f} MB. "
                      f"Alerts identical: {'yes' if same else 'NO'}.", ""]
    lines.append(f"Machine: {results['machine']}, Python {results['python']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
