#!/usr/bin/env python3
"""Detection benchmark: replay a labelled stream through the detector, score it, report.

    python benchmarks/detection.py                       # the dev stream in ../shared
    python benchmarks/detection.py --seed 2 --seed 3     # also build and score other seeds
    python benchmarks/detection.py --stress paraphrased-b   # campaigns reworded (benchmarks/stress/)
    python benchmarks/detection.py --no-dev --stress multilingual   # an issue-18 stream (stress/scenarios.py)
    python benchmarks/detection.py --no-dev --stress all --reseed 1000 --results-name detection-reseed  # drawn again
    python benchmarks/detection.py --seed 2 ... --seed 7 --stress all   # everything: the figures of the README

Streams are built with ``../shared/tools/make_stream.py`` into ``var/streams/`` (never
committed) and reused while they exist. Each built stream keeps the fingerprint of what built
it (``builder.txt``: the builder's files, its config, the corpora's manifest, the seed); every
result says whether the stream reused was built by today's builder (``stream_builder``), and a
stale one is named on stderr and in the report: rebuild it with ``--rebuild-stale``, since a
builder that changed draws other bytes, and figures from a stale stream are not today's.

Writes ``benchmarks/results/detection.json`` and ``detection.md``: the scorer's figures per
stream (recall/FPR per scenario, events-to-detect), the detector core's
throughput (events/s, one process, one core) and the bytes of state per key.
"""
from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"


BUILDER_STAMP = "builder.txt"  # in a stream's folder: the fingerprint of what built it


def builder_fingerprint(files: list[Path], config: str, seed: int) -> str:
    """What builds a stream, in 16 hex digits: the bytes of ``files`` (the builder, the
    scenario kinds, the corpora's manifest; a missing one counts as empty), its ``config``
    and its ``seed``."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes() if path.is_file() else b"")
        digest.update(b"\0")
    digest.update(config.encode())
    digest.update(f"\0{seed}".encode())
    return digest.hexdigest()[:16]


def stream_builder(out: Path, fingerprint: str) -> dict:
    """Whether the stream in ``out`` was built by ``fingerprint``: ``built_by`` is None when it
    predates the stamp (unknown, not known stale)."""
    stamp = out / BUILDER_STAMP
    built_by = stamp.read_text().strip() if stamp.is_file() else None
    return {"fingerprint": fingerprint, "built_by": built_by, "stale": built_by is not None and built_by != fingerprint}


def _reuse_or_build(out: Path, fingerprint: str, rebuild_stale: bool, build) -> Path:
    """The stream in ``out``, built (and stamped) when absent, or when stale and
    ``rebuild_stale``; a stale one reused is named on stderr."""
    if (out / "events.jsonl.gz").exists():
        if not stream_builder(out, fingerprint)["stale"]:
            return out
        if not rebuild_stale:
            print(f"{out.name}: built by another builder than today's ({BUILDER_STAMP}); reused as it is "
                  "(--rebuild-stale builds it again)", file=sys.stderr)
            return out
        (out / "events.jsonl.gz").unlink()
    out.mkdir(parents=True, exist_ok=True)
    build()
    (out / BUILDER_STAMP).write_text(fingerprint + "\n")
    return out


def seed_fingerprint(seed: int) -> str:
    """``builder_fingerprint`` of a seed stream: the shared builder, its corpora's manifest, the seed."""
    return builder_fingerprint([SHARED / "tools" / "make_stream.py", SHARED / "data" / "prompts" / "MANIFEST.json"],
                               "", seed)


def build_stream(seed: int, out: Path, rebuild_stale: bool = False) -> Path:
    return _reuse_or_build(out, seed_fingerprint(seed), rebuild_stale, lambda: subprocess.run(
        [sys.executable, str(SHARED / "tools" / "make_stream.py"), "--prompts", str(SHARED / "data" / "prompts"),
         "--out", str(out), "--seed", str(seed)], check=True))


# Stress streams: the builder with a config from benchmarks/stress/ (campaigns reworded or
# stripped of style), each at its own seed. Not tuned on: they show what a held-out stream
# of other campaign styles could cost.
STRESS = ROOT / "benchmarks" / "stress"
STRESS_SEEDS = {"paraphrased-a": 23, "paraphrased-b": 24, "unwrapped": 21, "unwrapped-plain-corpora": 22, "judging-a": 25,
                "judging-b": 26,
                # issue 18: adaptive campaigns and product hard negatives, kinds in stress/scenarios.py
                "multilingual": 31, "obfuscated": 32, "fabricated-conversations": 33, "content-cohort": 34,
                "harvest-plain": 35, "product-negatives": 36, "content-cohort-b": 37,
                "content-cohort-c": 38, "product-negatives-b": 39, "multilingual-reworded": 40,
                "content-cohort-aged": 41, "obfuscated-b": 42, "fabricated-conversations-b": 43,
                "fabricated-conversations-c": 44, "product-negatives-c": 45, "fabricated-conversations-d": 46,
                "product-negatives-d": 47, "product-negatives-e": 48, "evaluation-mimic": 49,
                "fabricated-conversations-e": 50, "product-negatives-f": 51, "agent-harvest": 52,
                "product-negatives-g": 53, "product-negatives-h": 54,
                "app-mimic": 55, "transformation-mimic": 56, "transformation-mimic-b": 57,
                "benign-shift": 58, "attack-shift": 59, "product-negatives-i": 60,
                "product-negatives-j": 61, "agent-newcomers": 62, "obfuscated-c": 63}
# The builder with the kinds of stress/scenarios.py registered (a superset of make_stream's).
STRESS_BUILDER = STRESS / "scenarios.py"


def stress_fingerprint(name: str, reseed: int = 0) -> str:
    """``builder_fingerprint`` of a stress stream: the shared builder, the scenario kinds, the
    config, the corpora's manifest and the seed."""
    config = (STRESS / f"{name}.json").read_text()
    prompts = SHARED / "data" / json.loads(config).get("_prompts", "prompts")
    return builder_fingerprint([SHARED / "tools" / "make_stream.py", STRESS_BUILDER, prompts / "MANIFEST.json"],
                               config, STRESS_SEEDS[name] + reseed)


def build_stress_stream(name: str, out: Path, reseed: int = 0, rebuild_stale: bool = False) -> Path:
    """``name``: a config in benchmarks/stress/. Its ``_prompts`` names the corpora folder of
    ../shared/data (default ``prompts``; ``prompts-ml`` adds ~30 languages); its ``_drop_corpora``
    are left out of the prompt corpora (a directory of links with a reduced manifest); the rest
    goes to the builder, at the stream's seed + ``reseed``."""
    return _reuse_or_build(out, stress_fingerprint(name, reseed), rebuild_stale,
                           lambda: _build_stress(name, out, reseed))


def _build_stress(name: str, out: Path, reseed: int) -> None:
    config = json.loads((STRESS / f"{name}.json").read_text())
    prompts = SHARED / "data" / config.pop("_prompts", "prompts")
    drop = config.pop("_drop_corpora", [])
    if drop:
        reduced = out / "prompts"
        reduced.mkdir(exist_ok=True)
        for path in prompts.iterdir():
            if path.name != "MANIFEST.json" and not (reduced / path.name).exists():
                (reduced / path.name).symlink_to(path)
        manifest = json.loads((prompts / "MANIFEST.json").read_text())
        corpora = manifest.get("corpora", manifest)
        for corpus in drop:
            corpora.pop(corpus)
        (reduced / "MANIFEST.json").write_text(json.dumps(manifest))
        prompts = reduced
    (out / "config.json").write_text(json.dumps(config))
    subprocess.run([sys.executable, str(STRESS_BUILDER), "--prompts", str(prompts),
                    "--out", str(out), "--seed", str(STRESS_SEEDS[name] + reseed), "--config", str(out / "config.json")],
                   check=True)


def run_stream(name: str, stream: Path, work: Path, builder: dict | None = None) -> dict:
    from distillguard.replay import run_replay

    alerts, exculpated = work / f"{name}-alerts.jsonl", work / f"{name}-exculpated.jsonl"
    summary = run_replay(stream / "events.jsonl.gz", alerts, progress=False, exculpated_path=exculpated)
    score_json = work / f"{name}-score.json"
    subprocess.run([sys.executable, str(SHARED / "tools" / "score.py"), str(stream / "events.jsonl.gz"),
                    str(stream / "labels.csv"), str(alerts), "--json", str(score_json), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    score = json.loads(score_json.read_text())
    return {"clusters": cluster_incidents(alerts, stream / "labels.csv"),
            "benign_alerted": benign_alerted(alerts, stream / "labels.csv"),
            "key_history": key_histories(stream / "events.jsonl.gz", alerts, stream / "labels.csv"),
            "stream": name, "stream_builder": builder, "events": summary.events, "keys": summary.keys,
            "alerts": summary.alerts,
            # recorded, not sent (contracts.alert.is_exculpated): the scorer never sees them
            "exculpated": summary.exculpated,
            "benign_keys_exculpated": benign_keys_named(exculpated, stream / "labels.csv"),
            "replay_seconds": round(summary.seconds, 2),
            "events_per_second": round(summary.events / summary.seconds),
            "state_bytes_per_key": round(summary.state_bytes_per_key, 1),
            "link_records": summary.link_records,
            "cluster_records_per_second": round(summary.link_records / summary.cluster_seconds)
            if summary.cluster_seconds else None,
            "score": score}


def cluster_incidents(alerts: Path, labels: Path) -> dict:
    """How well cluster incidents match campaigns (the scorer counts keys named, not this):
    one incident per coordinated campaign is what on-call needs. Read from each cluster
    incident's last alert; campaigns come from the labels (evaluation only)."""
    campaign = {row["api_key_id"]: row["campaign_id"] or "benign" for row in csv.DictReader(open(labels))}
    last: dict[str, list[str]] = {}
    for line in open(alerts, encoding="utf-8"):
        alert = json.loads(line)
        if alert["entity_type"] == "cluster":
            last[alert["alert_id"]] = alert["api_key_ids"]
    incidents = [collections.Counter(campaign.get(k, "unknown") for k in keys) for keys in last.values()]
    members = sum(sum(c.values()) for c in incidents)
    hydras = {c for k, c in campaign.items() if c != "benign"} & {c for i in incidents for c in i}
    return {
        "incidents": len(incidents),
        "largest_incident_keys": max((sum(c.values()) for c in incidents), default=0),
        "most_campaigns_in_one_incident": max((len(c) for c in incidents), default=0),
        # members that belong to their incident's main campaign (1.0: no unrelated key named)
        "purity": round(sum(c.most_common(1)[0][1] for c in incidents) / members, 4) if members else None,
        # the most incidents one campaign's keys are spread over (with 3+ keys in each)
        "most_incidents_per_campaign": max((sum(1 for i in incidents if i[c] >= 3) for c in hydras), default=0),
    }


def benign_keys_named(alerts: Path, labels: Path) -> int:
    """How many benign keys the records of ``alerts`` name."""
    benign = {row["api_key_id"] for row in csv.DictReader(open(labels)) if row["label"] == "benign"}
    return len(benign.intersection(key for line in open(alerts, encoding="utf-8")
                                   for key in json.loads(line).get("api_key_ids") or ()))


def benign_alerted(alerts: Path, labels: Path) -> dict:
    """Benign keys alerted, per scenario, by the highest severity any alert named them with
    (key or cluster alert): the scorer's FPR counts every alert alike, but a product may earn
    an ``info`` with reasons while a ``critical`` page on it is the failure (issue 18)."""
    from distillguard.contracts.alert import Severity

    scenario = {row["api_key_id"]: row["scenario"] for row in csv.DictReader(open(labels)) if row["label"] == "benign"}
    worst: dict[str, int] = {}
    for line in open(alerts, encoding="utf-8"):
        alert = json.loads(line)
        # an unknown severity is counted as a page, not hidden
        rank = Severity.rank_of(alert.get("severity")) or Severity.CRITICAL.rank
        for key in alert.get("api_key_ids") or [alert["entity_id"]]:
            if key in scenario and rank > worst.get(key, -1):
                worst[key] = rank
    out: dict[str, dict] = {}
    for key, name in scenario.items():
        row = out.setdefault(name, {"keys": 0, "info": 0, "warning": 0, "critical": 0})
        row["keys"] += 1
        if key in worst:
            row[Severity.of_rank(worst[key]).value] += 1
    return out


def _iso_ms(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def key_histories(events: Path, alerts: Path, labels: Path) -> dict:
    """How well the key alerts' account of the key's own past matches the labels.

    An attack key that sent ``TURNED_AFTER`` or more events before its ``attack_from`` had an
    ordinary past and then turned: its first key alert should say ``turned``, and its
    ``events_before_extraction`` should be its events before ``attack_from`` (the error is
    in events: a label's ``attack_from`` can be an hour before the campaign's first request).
    Every other attack key extracted from its first events. Read from each key's first
    alert that carries the history.
    """
    import gzip

    from distillguard.models.pipeline import TURNED_AFTER

    attack_from = {row["api_key_id"]: _iso_ms(row["attack_from"]) for row in csv.DictReader(open(labels))
                   if row["label"] == "attack" and row["attack_from"]}
    before: collections.Counter = collections.Counter()
    with gzip.open(events, "rt", encoding="utf-8") as src:
        for line in src:
            try:
                event = json.loads(line)
                key = event["api_key_id"]
                if key in attack_from and _iso_ms(event["ts"]) < attack_from[key]:
                    before[key] += 1
            except (ValueError, KeyError, TypeError):
                continue
    told: dict[str, dict] = {}
    for line in open(alerts, encoding="utf-8"):
        alert = json.loads(line)
        key = alert["entity_id"]
        if alert["entity_type"] != "key" or key in told or key not in attack_from:
            continue
        reasons = {r["signal"]: r["value"] for r in alert["reasons"]}
        if "key_history" in reasons:
            told[key] = reasons
    turned = {k for k in attack_from if before[k] >= TURNED_AFTER}
    from_start = set(attack_from) - turned
    errors = sorted(abs(told[k]["events_before_extraction"] - before[k]) for k in turned if k in told)

    def share(keys: set, history: str):
        keys = [k for k in keys if k in told]
        return round(sum(told[k]["key_history"] == history for k in keys) / len(keys), 4) if keys else None

    return {
        "turned_keys": len(turned), "turned_keys_told": sum(k in told for k in turned),
        "turned_called_turned": share(turned, "turned"),
        "turned_event_error_median": errors[len(errors) // 2] if errors else None,
        "turned_event_error_p90": errors[int(0.9 * (len(errors) - 1))] if errors else None,
        "from_start_keys_told": sum(k in told for k in from_start),
        "from_start_called_from_first_events": share(from_start, "from_first_events"),
    }


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _median_etd(score: dict):
    etd = score.get("events_to_detect") or {}
    per_key = etd.get("per_key") or etd.get("key") or {}
    return per_key.get("median") if isinstance(per_key, dict) else None


def _table(columns: list[str], rows) -> list[str]:
    """A markdown table: its header, then one line per row of cells."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def builders_line(results: list[dict]) -> str:
    """Which built streams today's builder built (``stream_builder``), which another (stale),
    which predate the stamp.

    >>> builders_line([{"stream": "a", "stream_builder": {"built_by": "f", "fingerprint": "f", "stale": False}},
    ...                {"stream": "b", "stream_builder": {"built_by": "e", "fingerprint": "f", "stale": True}},
    ...                {"stream": "c", "stream_builder": {"built_by": None, "fingerprint": "f", "stale": False}},
    ...                {"stream": "dev-s1", "stream_builder": None}]).split("; ")
    ["Streams built: 1 by today's builder", 'STALE (another builder, rebuild with --rebuild-stale): b', 'built before the builder was recorded: c.']
    """
    built = [r for r in results if r.get("stream_builder")]
    stale = [r["stream"] for r in built if r["stream_builder"]["stale"]]
    unknown = [r["stream"] for r in built if r["stream_builder"]["built_by"] is None]
    line = f"Streams built: {len(built) - len(stale) - len(unknown)} by today's builder"
    if stale:
        line += f"; STALE (another builder, rebuild with --rebuild-stale): {', '.join(stale)}"
    if unknown:
        line += f"; built before the builder was recorded: {', '.join(unknown)}"
    return line + "."


def markdown(results: list[dict]) -> str:
    lines = ["# Detection benchmark", "", f"Command: `python benchmarks/detection.py {' '.join(sys.argv[1:])}`",
             f"Machine: {platform.machine()}, Python {platform.python_version()}, one process.", ""]
    lines += [builders_line(results), ""]
    lines += _table(
        ["stream", "events", "key recall", "campaign recall", "benign FPR", "etd median (key)", "events/s",
         "state B/key", "cluster detector records/s", "exculpated, recorded (benign keys)"],
        ([r["stream"], r["events"], _fmt(r["score"].get("key_recall")), _fmt(r["score"].get("campaign_recall")),
          _fmt(r["score"].get("benign_fpr")), _fmt(_median_etd(r["score"])), r["events_per_second"],
          r["state_bytes_per_key"], r["cluster_records_per_second"],
          f"{r.get('exculpated', 0)} ({r.get('benign_keys_exculpated', 0)})"] for r in results))
    lines += ["", "Cluster incidents against campaigns (last alert of each incident):", ""]
    lines += _table(
        ["stream", "incidents", "largest (keys)", "most campaigns in one", "purity", "most incidents per campaign"],
        ([r["stream"], c["incidents"], c["largest_incident_keys"], c["most_campaigns_in_one_incident"],
          _fmt(c["purity"]), c["most_incidents_per_campaign"]] for r in results for c in [r["clusters"]]))
    lines += ["", "The key's own past, as its first alert tells it (attack keys with 20+ events before "
              "attack_from should read `turned`, the rest `from_first_events`):", ""]
    lines += _table(
        ["stream", "turned keys (alerted with history)", "called turned", "events-before error median / p90",
         "from-start keys (alerted with history)", "called from_first_events"],
        ([r["stream"], f"{h['turned_keys']} ({h['turned_keys_told']})", _fmt(h["turned_called_turned"]),
          f"{h['turned_event_error_median']} / {h['turned_event_error_p90']}", h["from_start_keys_told"],
          _fmt(h["from_start_called_from_first_events"])] for r in results for h in [r["key_history"]]))
    lines += ["", "Benign keys alerted, by the highest severity that named them (a `critical` on a benign "
              "key is a false page; products may earn `info` at most):", ""]
    lines += _table(
        ["stream", "benign keys", "info", "warning", "critical", "scenarios with a critical page"],
        ([r["stream"], sum(v["keys"] for v in b.values()), sum(v["info"] for v in b.values()),
          sum(v["warning"] for v in b.values()), sum(v["critical"] for v in b.values()),
          ", ".join(f"{n} ({v['critical']}/{v['keys']})" for n, v in sorted(b.items()) if v["critical"]) or "-"]
         for r in results for b in [r.get("benign_alerted") or {}]))
    for r in results:
        lines += ["", f"## {r['stream']}: per scenario", ""]
        lines += _table(
            ["scenario", "label", "keys", "alerted", "recall (attack) / FPR (benign)"],
            ([name, row.get("label"), row.get("keys"), row.get("alerted_keys"),
              _fmt(row.get("key_recall") if row.get("label") == "attack" else row.get("fpr"))]
             for name, row in sorted((r["score"].get("per_scenario") or {}).items())))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, action="append", default=[], help="also build and score this seed")
    parser.add_argument("--no-dev", action="store_true", help="skip the dev stream")
    parser.add_argument("--stress", action="append", default=[], choices=sorted(STRESS_SEEDS) + ["all"],
                        help="also build and score this stress stream (benchmarks/stress/NAME.json); all: every one")
    parser.add_argument("--reseed", type=int, default=0,
                        help="build the --stress streams at their seed + N (var/streams/stress-NAME+N): the same "
                        "settings drawn again, to see whether a figure was one draw's")
    parser.add_argument("--rebuild-stale", action="store_true",
                        help="build again every stream whose builder.txt names another builder than today's")
    parser.add_argument("--results-name", default="detection",
                        help="write benchmarks/results/NAME.{json,md} (default: detection)")
    args = parser.parse_args()
    if "all" in args.stress:
        args.stress = list(STRESS_SEEDS)
    work = ROOT / "var" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    results = []
    if not args.no_dev:
        results.append(run_stream("dev-s1", SHARED / "data" / "streams" / "dev-s1", work))
    for seed in args.seed:
        out = build_stream(seed, ROOT / "var" / "streams" / f"seed-{seed}", args.rebuild_stale)
        results.append(run_stream(f"seed-{seed}", out, work, stream_builder(out, seed_fingerprint(seed))))
    for name in args.stress:
        label = f"stress-{name}" + (f"+{args.reseed}" if args.reseed else "")
        out = build_stress_stream(name, ROOT / "var" / "streams" / label, args.reseed, args.rebuild_stale)
        results.append(run_stream(label, out, work, stream_builder(out, stress_fingerprint(name, args.reseed))))
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    (RESULTS / f"{args.results_name}.json").write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / f"{args.results_name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
