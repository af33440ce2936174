"""Replay speed side by side with an older tree, and proof that the alerts did not change.

    python benchmarks/replay_speed.py                      # dev-s1: this tree vs 55718be, 3 rounds
    python benchmarks/replay_speed.py --rounds 2 --stress harvest-plain --stress multilingual
    python benchmarks/replay_speed.py --rounds 2 --same-alerts var/streams/stress-obfuscated
    python benchmarks/replay_speed.py --jobs 2 ...        # this tree as `replay --jobs 2`, the base in one process

Each tree runs ``distillguard replay STREAM --alerts OUT -q`` in a process of its own, the
trees taking turns within every round (the order alternates from round to round), so that
the load of a shared machine falls on both alike. The time is the process's CPU time (user +
system, from ``getrusage``: what one core spends, imports included), not the wall clock,
which other users of the machine stretch; the wall clock is recorded beside it (what ``--jobs``
changes: the events/s a user sees). Every ratio is this tree's CPU time over the
base's in the same round; under 1.0 means faster. Every timed stream (dev-s1, and each
``--stress`` stream, built into ``var/streams/`` as ``benchmarks/detection.py`` builds it)
is timed in every round.

Every timed stream and every ``--same-alerts`` stream is also replayed by the
``--reference`` tree (default: main where this work began, the same as the base) and the
alert files compared byte for byte: a speed change must not change detection.

Older trees are checked out with ``git worktree add --detach`` into a temporary folder and
imported through ``PYTHONPATH`` (a folder of links laid out as the installed package), with
this tree's virtualenv; the worktrees are removed at the end. Writes
``benchmarks/results/NAME.{json,md}`` (default ``replay-speed``).
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
DEV_STREAM = SHARED / "data" / "streams" / "dev-s1" / "events.jsonl.gz"
SPEED_BASE = "55718be"     # main when issue 20's event step began: the speed to double
ALERTS_REFERENCE = "55718be"  # ... and the alerts to keep
# the package layout of revisions before distillguard/ (pyproject's package-dir): folder -> import path
OLD_PACKAGE_DIRS = {"core": "", "models": "models", "streams": "streams", "sinks": "sinks", "contracts": "contracts"}


def checkout(rev: str, into: Path) -> Path:
    """A detached worktree of ``rev`` and, beside it, a folder to put on ``PYTHONPATH``."""
    tree = into / f"tree-{rev}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
    if (tree / "distillguard" / "__init__.py").is_file():  # the package is a folder of the tree itself
        return tree
    package = into / f"path-{rev}" / "distillguard"
    package.mkdir(parents=True)
    for folder, sub in OLD_PACKAGE_DIRS.items():
        if not (tree / folder).is_dir():
            continue
        if sub:
            if (tree / folder).is_dir():  # (contracts/ is younger than some trees compared)
                (package / sub).symlink_to(tree / folder)
        else:
            for path in (tree / folder).iterdir():
                (package / path.name).symlink_to(path)
    return package.parent


def remove(tree: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def replay(python_path: Path | None, stream: Path, alerts: Path, cwd: Path, jobs: int | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``distillguard replay`` run: its processes' CPU (the
    key processes of ``--jobs`` included: they are waited for), and the clock. ``jobs``: the
    tree's ``--jobs`` (None: not given; trees before 7d49445 have no such option)."""
    env = _environment(python_path)
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "distillguard.cli", "replay", str(stream), "--alerts", str(alerts), "-q"]
                   + ([] if jobs is None else ["--jobs", str(jobs)]),
                   check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def _environment(python_path: Path | None) -> dict:
    """A replay's environment: no ``DG_`` setting (defaults, as the benchmark), and the tree at
    ``python_path`` on ``PYTHONPATH`` (None: this tree, installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DG_")}
    env.pop("PYTHONPATH", None)
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    return env


def accepts_jobs(python_path: Path) -> bool:
    """Whether an older tree's ``replay`` has ``--jobs`` (7d49445 and later): its default is
    then one process per CPU, and the base must be asked for one process to be the base."""
    usage = subprocess.run([sys.executable, "-m", "distillguard.cli", "replay", "--help"],
                           env=_environment(python_path), cwd=python_path, capture_output=True, text=True,
                           check=True).stdout
    return "--jobs" in usage


def count_lines(path: Path) -> int:
    import gzip
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def markdown(result: dict) -> str:
    jobs = result.get("jobs", 1)
    lines = [f"# Replay speed: this tree vs {result['base']}", "",
             f"Command: `{result['command']}`", "",
             "CPU seconds of one `distillguard replay` run (user + system of its processes, imports included) "
             "and its wall-clock seconds; the trees take turns in every round, so a loaded machine slows both "
             "alike. " + (f"This tree runs `--jobs {jobs}` ({jobs} key processes and this one); the base runs "
                          "in one process: the wall-clock ratio is the events/s the user sees, the CPU ratio "
                          "the cost per event." if jobs > 1 else "Both run in one process."), ""]
    for name, timed in result["streams"].items():
        lines += [f"## {name} ({timed['events']:,} events)", "",
                  "| round | base CPU (s) | this CPU (s) | CPU this / base | base wall (s) | this wall (s) "
                  "| wall this / base |", "|---|---|---|---|---|---|---|"]
        for i, r in enumerate(timed["rounds"], 1):
            lines.append(f"| {i} | {r['base_s']:.1f} | {r['this_s']:.1f} | {r['ratio']:.3f} | "
                         f"{r.get('base_wall_s', float('nan')):.1f} | {r.get('this_wall_s', float('nan')):.1f} | "
                         f"{r.get('wall_ratio', float('nan')):.3f} |")
        lines += ["", f"Median CPU ratio {timed['median_ratio']:.3f} (x{1 / timed['median_ratio']:.2f} events per "
                  f"CPU second): this tree {timed['this_events_per_s']:,.0f} events/s of CPU, base "
                  f"{timed['base_events_per_s']:,.0f} (best rounds)."]
        if "median_wall_ratio" in timed:
            lines += [f"Median wall-clock ratio {timed['median_wall_ratio']:.3f} (x{1 / timed['median_wall_ratio']:.2f} "
                      f"events/s): this tree {timed['this_wall_events_per_s']:,.0f} events/s, base "
                      f"{timed['base_wall_events_per_s']:,.0f} (best rounds)."]
        lines.append("")
    lines += [f"## Alerts against {result['reference']} (main before this work)", "",
              "| stream | alerts | byte-identical |", "|---|---|---|"]
    for name, same in result["same_alerts"].items():
        lines.append(f"| {name} | {same['alerts']} | {'yes' if same['identical'] else 'NO'} |")
    lines += ["", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


def stress_stream(name: str) -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from detection import build_stress_stream  # (the benchmark's own builder: same seeds, same configs)

    return build_stress_stream(name, ROOT / "var" / "streams" / f"stress-{name}") / "events.jsonl.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", type=Path, action="append", default=[],
                        help="a stream to time (events.jsonl[.gz]; default dev-s1)")
    parser.add_argument("--stress", action="append", default=[], help="also time this stress stream "
                        "(benchmarks/stress/NAME.json)")
    parser.add_argument("--base", default=SPEED_BASE, help="the tree to be faster than")
    parser.add_argument("--reference", default=ALERTS_REFERENCE, help="the tree whose alerts must not change")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--same-alerts", type=Path, action="append", default=[],
                        help="also compare the alerts on this stream (a folder with events.jsonl.gz, or a file)")
    parser.add_argument("--results-name", default="replay-speed", help="write benchmarks/results/NAME.{json,md}")
    parser.add_argument("--jobs", type=int, default=1, help="this tree's replay --jobs (the base runs in one process)")
    args = parser.parse_args(argv)
    timed = {}  # label -> path (the replays run in a temporary folder: absolute paths)
    for path in args.stream or [DEV_STREAM]:
        timed["dev-s1" if path.resolve() == DEV_STREAM.resolve() else str(path)] = path.resolve()
    for name in args.stress:
        timed[f"stress-{name}"] = stress_stream(name).resolve()
    compared = dict(timed)
    for extra in (path.resolve() for path in args.same_alerts):
        compared[extra.name] = extra / "events.jsonl.gz" if extra.is_dir() else extra
    with tempfile.TemporaryDirectory(prefix="dg-replay-speed-") as tmp:
        work = Path(tmp)
        trees = {}
        try:
            for rev in dict.fromkeys((args.base, args.reference)):
                trees[rev] = checkout(rev, work)
            # (run from the temporary folder: the working directory must not shadow the package)
            base_jobs = 1 if accepts_jobs(trees[args.base]) else None  # (the base in one process)
            rounds: dict[str, list] = {label: [] for label in timed}
            for i in range(args.rounds):
                for s_i, (label, stream) in enumerate(timed.items()):
                    turn = [("base", trees[args.base]), ("this", None)]
                    times = {}
                    for name, path in (turn if (i + s_i) % 2 == 0 else turn[::-1]):
                        times[name] = replay(path, stream, work / f"{name}-{s_i}-{i}.jsonl", work,
                                             jobs=args.jobs if name == "this" else base_jobs)
                    (base_cpu, base_wall), (this_cpu, this_wall) = times["base"], times["this"]
                    rounds[label].append({"base_s": base_cpu, "this_s": this_cpu, "ratio": this_cpu / base_cpu,
                                          "base_wall_s": base_wall, "this_wall_s": this_wall,
                                          "wall_ratio": this_wall / base_wall})
                    print(f"round {i + 1}, {label}: CPU base {base_cpu:.1f}s, this {this_cpu:.1f}s; wall base "
                          f"{base_wall:.1f}s, this {this_wall:.1f}s", file=sys.stderr, flush=True)
            same = {}
            for s_i, (label, stream) in enumerate(compared.items()):
                ours, theirs = work / f"this-{s_i}.alerts", work / f"ref-{s_i}.alerts"
                if label in timed:  # this tree's alerts on it are there already (and the base's, if the reference)
                    ours = work / f"this-{s_i}-0.jsonl"
                else:
                    replay(None, stream, ours, work, jobs=args.jobs)
                if label in timed and args.reference == args.base:
                    theirs = work / f"base-{s_i}-0.jsonl"
                else:
                    replay(trees[args.reference], stream, theirs, work)
                same[label] = {"alerts": count_lines(ours), "identical": filecmp.cmp(ours, theirs, shallow=False)}
                print(f"alerts on {label}: {same[label]}", file=sys.stderr, flush=True)
        finally:
            for rev in trees:
                remove(work / f"tree-{rev}")
    streams = {}
    for label, stream in timed.items():
        events = count_lines(stream)
        ratios = sorted(r["ratio"] for r in rounds[label])
        streams[label] = {"path": str(stream.relative_to(SHARED.parent)) if stream.is_relative_to(SHARED.parent)
                          else str(stream), "events": events, "rounds": rounds[label],
                          "median_ratio": ratios[len(ratios) // 2],
                          "this_events_per_s": events / min(r["this_s"] for r in rounds[label]),
                          "base_events_per_s": events / min(r["base_s"] for r in rounds[label]),
                          "median_wall_ratio": sorted(r["wall_ratio"] for r in rounds[label])[len(ratios) // 2],
                          "this_wall_events_per_s": events / min(r["this_wall_s"] for r in rounds[label]),
                          "base_wall_events_per_s": events / min(r["base_wall_s"] for r in rounds[label])}
    result = {
        "command": "python benchmarks/replay_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "base": args.base, "reference": args.reference, "jobs": args.jobs, "streams": streams, "same_alerts": same,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.results_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.results_name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(s["identical"] for s in same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
