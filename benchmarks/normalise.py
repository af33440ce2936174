#!/usr/bin/env python3
"""Text normalisation benchmark: what ``models/normalise.py`` costs and what it buys.

    python benchmarks/normalise.py                 # before = the commit before normalise.py was added
    python benchmarks/normalise.py --before REV    # any other revision of models/features.py

Writes ``benchmarks/results/NAME.json`` and ``NAME.md`` (``--results-name``, default ``normalise``):

1. Cost: per-event ``featurize`` time on the dev-s1 events (parsed once, outside the timing),
   the features.py of ``--before`` and the current one timed in the same run, interleaved, best
   of ``--repeat``; and ``normalise`` alone on the ASCII and the non-ASCII prompts.
2. Detection: dev-s1 and an obfuscated dev-s1 (every attack key's prompts from its
   ``attack_from`` on disguised with one trick per campaign: Cyrillic look-alikes, zero-width
   characters, fullwidth or mathematical letters, spaced-out or dotted letters, combining
   marks, or all mixed; since 2026-12-03 also leetspeak, a sign inside words, or the
   instruction lines' words joined by underscores; fixed seed; benign keys untouched) replayed with each features.py
   (``distillguard replay``'s ``run_replay`` in a subprocess) and scored with
   ``../shared/tools/score.py``: key recall, campaign recall, benign FPR before vs after.
3. dev-s1 itself: the alerted keys and cluster incidents before vs after, every difference listed.

Streams and alerts go to ``var/bench/normalise/`` (never committed). Part 1 is a micro-benchmark
of one function (``featurize``, events decoded with ``parse_event`` outside the timing); parts 2
and 3 replay through ``run_replay``, which runs the one event step (``models/step.py``).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import json
import platform
import random
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "streams" / "dev-s1"
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "var" / "bench" / "normalise"
SEED = 18


# ---- the tricks (what an attacker who read features.py does to keep a prompt readable) ----

_CYRILLIC = str.maketrans("aceopxyisjhABCEHKMOPTXYSI", "асеорхуіѕјһАВСЕНКМОРТХУЅІ")
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


def cyrillic(text: str, rng: random.Random) -> str:
    # about half the letters that have a look-alike, so that words stay mixed-script
    return "".join(ch.translate(_CYRILLIC) if rng.random() < 0.5 else ch for ch in text)


def zero_width(text: str, rng: random.Random) -> str:
    return "".join(ch + rng.choice(_INVISIBLE) if ch.isalpha() and rng.random() < 0.4 else ch for ch in text)


def fullwidth(text: str, rng: random.Random) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def math_letters(text: str, rng: random.Random) -> str:
    base = rng.choice([0x1D41A, 0x1D44E, 0x1D5EE, 0x1D68A])  # bold, italic, sans bold, monospace small a
    return "".join(chr(base + ord(ch) - 97) if "a" <= ch <= "z" and not (base == 0x1D44E and ch == "h") else ch
                   for ch in text)


def spaced(text: str, rng: random.Random) -> str:
    sep = rng.choice([" ", ".", "-"])
    gap = "  " if sep == " " else " "
    # the instruction lines only (a whole essay spelled out is not what a model would read)
    lines = text.split("\n")
    for i in (0, len(lines) - 1):
        lines[i] = gap.join(sep.join(word) for word in lines[i].split(" "))
    return "\n".join(lines)


def marks(text: str, rng: random.Random) -> str:
    return "".join(ch + rng.choice("\u0301\u0308\u0336\u0323") if ch.isalpha() and rng.random() < 0.5 else ch
                   for ch in text)


def mixed(text: str, rng: random.Random) -> str:
    for trick in rng.sample([cyrillic, zero_width, marks, fullwidth], 2):
        text = trick(text, rng)
    return text


_LEET = {"a": "4@", "e": "3", "i": "1", "o": "0", "s": "5$", "t": "7", "l": "1"}


def leet(text: str, rng: random.Random) -> str:
    # letters as digits and signs but a word's first (a word of digits alone reads as a number,
    # to a model too), in words of three letters or more that are no call signature
    def word(w: str) -> str:
        if sum(map(str.isalpha, w)) < 3 or "(" in w:
            return w
        return w[0] + "".join(rng.choice(_LEET[c]) if c in _LEET and rng.random() < 0.6 else c for c in w[1:])
    return " ".join(map(word, text.split(" ")))


def signs_inside(text: str, rng: random.Random) -> str:
    sign = rng.choice("-*.~^+")  # one sign a prompt, inside words of four letters or more

    def word(w: str) -> str:
        if len(w) < 4 or not w.isalpha() or rng.random() >= 0.6:
            return w
        cut = rng.randint(1, len(w) - 1)
        return w[:cut] + sign + w[cut:]
    return " ".join(map(word, text.split(" ")))


def underscored(text: str, rng: random.Random) -> str:
    # the instruction lines only, their words joined by underscores
    lines = text.split("\n")
    for i in sorted({0, len(lines) - 1}):
        lines[i] = "_".join(lines[i].split(" "))
    return "\n".join(lines)


# (the last three added 2026-12-03, with the second reading of normalise.repair_words)
TRICKS = {t.__name__: t for t in (cyrillic, zero_width, fullwidth, math_letters, spaced, marks, mixed, leet,
                                  signs_inside, underscored)}


def _iso_ms(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def build_obfuscated(out: Path) -> dict:
    """dev-s1 with every attack key's prompts (from its attack_from) disguised, one trick per
    campaign. Returns the trick of each campaign."""
    labels = {row["api_key_id"]: row for row in csv.DictReader(open(DEV / "labels.csv"))}
    campaigns = sorted({row["campaign_id"] for row in labels.values() if row["label"] == "attack"})
    rng = random.Random(SEED)
    trick_of = {campaign: rng.choice(sorted(TRICKS)) for campaign in campaigns}
    if (out / "events.jsonl.gz").exists():
        return trick_of
    out.mkdir(parents=True, exist_ok=True)
    attack_from = {k: _iso_ms(r["attack_from"]) for k, r in labels.items() if r["label"] == "attack" and r["attack_from"]}
    with gzip.open(DEV / "events.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(out / "events.jsonl.gz", "wt", encoding="utf-8") as dst:
        for line in src:
            event = json.loads(line)
            key = event.get("api_key_id")
            if key in attack_from and _iso_ms(event["ts"]) >= attack_from[key] and isinstance(event.get("prompt"), str):
                trick = TRICKS[trick_of[labels[key]["campaign_id"]]]
                event["prompt"] = trick(event["prompt"], random.Random(f"{SEED}:{event['event_id']}"))
            dst.write(json.dumps(event, ensure_ascii=False) + "\n")
    (out / "labels.csv").write_bytes((DEV / "labels.csv").read_bytes())
    return trick_of


# ---- the two features.py ---------------------------------------------------------------------


def _before_rev(rev: str | None) -> str:
    if rev:
        return rev
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "models/normalise.py"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    return f"{added[-1]}^"


def _old_features_source(rev: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:models/features.py"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def load_features(source: str, name: str) -> types.ModuleType:
    """A features.py from source, as a module of the distillguard.models package (its relative
    imports resolve), without replacing the installed one."""
    import distillguard.models  # noqa: F401  (the package the relative imports resolve in)

    spec = importlib.util.spec_from_loader(f"distillguard.models.{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "distillguard.models"
    sys.modules[spec.name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


# ---- cost ----------------------------------------------------------------------------------------


def measure_cost(before_source: str, sample: int, repeat: int) -> dict:
    from distillguard.models import features as after
    from distillguard.models.events import parse_event
    from distillguard.models import normalise as normalise_module
    from distillguard.models.normalise import normalise

    before = load_features(before_source, "features_before")
    events = []
    with gzip.open(DEV / "events.jsonl.gz", "rb") as src:
        for line in src:
            event = parse_event(line.rstrip(b"\n"))
            if hasattr(event, "prompt"):
                events.append(event)
            if len(events) >= sample:
                break
    # The machine is shared: CPU time (not wall time) of chunks of 500 events, before and
    # after interleaved chunk by chunk, the best of ``repeat`` kept per chunk, then summed.
    totals = {"before": 0.0, "after": 0.0}
    for at in range(0, len(events), 500):
        chunk = events[at:at + 500]
        best = {"before": float("inf"), "after": float("inf")}
        for _ in range(repeat):
            for label, module in (("before", before), ("after", after)):
                featurize = module.featurize
                normalise_module._normalise_short.cache_clear()  # no repeat may profit from the last
                started = time.process_time()
                for event in chunk:
                    featurize(event)
                best[label] = min(best[label], time.process_time() - started)
        for label in totals:
            totals[label] += best[label]
    ascii_prompts = [e.prompt[:20_000] for e in events if e.prompt.isascii()]
    other_prompts = [e.prompt[:20_000] for e in events if not e.prompt.isascii()]

    def per_text_us(texts: list[str]) -> float | None:
        if not texts:
            return None
        total = 0.0
        for at in range(0, len(texts), 500):
            best = float("inf")
            for _ in range(repeat):
                normalise_module._normalise_short.cache_clear()
                started = time.process_time()
                for text in texts[at:at + 500]:
                    normalise(text)
                best = min(best, time.process_time() - started)
            total += best
        return round(total / len(texts) * 1e6, 2)

    before_us = totals["before"] / len(events) * 1e6
    after_us = totals["after"] / len(events) * 1e6
    return {
        "events": len(events), "repeat": repeat,
        "featurize_us_before": round(before_us, 2), "featurize_us_after": round(after_us, 2),
        "ratio_after_before": round(after_us / before_us, 3),
        "events_per_second_before": round(1e6 / before_us), "events_per_second_after": round(1e6 / after_us),
        "ascii_share": round(len(ascii_prompts) / len(events), 4),
        "normalise_us_ascii": per_text_us(ascii_prompts),
        "normalise_us_non_ascii": per_text_us(other_prompts),
    }


# ---- detection -----------------------------------------------------------------------------------

_REPLAY = """
import sys, importlib.util, json
source = open(sys.argv[1], encoding="utf-8").read() if sys.argv[1] != "-" else None
if source is not None:
    import distillguard.models
    spec = importlib.util.spec_from_loader("distillguard.models.features", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "distillguard.models"
    sys.modules[spec.name] = module
    exec(compile(source, "<features before>", "exec"), module.__dict__)
    distillguard.models.features = module
from distillguard.replay import run_replay
s = run_replay(sys.argv[2], sys.argv[3], progress=False)
print(json.dumps({"events": s.events, "alerts": s.alerts, "seconds": s.seconds}))
"""


def replay(stream: Path, alerts: Path, features_file: Path | None) -> dict:
    """Replay ``stream`` in a fresh process, with the features.py in ``features_file`` (None:
    the installed one), so that every module binds the features it is given."""
    done = subprocess.run([sys.executable, "-c", _REPLAY, str(features_file) if features_file else "-",
                           str(stream / "events.jsonl.gz"), str(alerts)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def score(stream: Path, alerts: Path) -> dict:
    out = alerts.with_suffix(".score.json")
    subprocess.run([sys.executable, str(SHARED / "tools" / "score.py"), str(stream / "events.jsonl.gz"),
                    str(stream / "labels.csv"), str(alerts), "--json", str(out), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    return {k: _round(result.get(k)) for k in ("key_recall", "campaign_recall", "benign_fpr")} | {
        "per_scenario_recall": {name: _round(row.get("key_recall"))
                                for name, row in sorted(result.get("per_scenario", {}).items())
                                if row.get("label") == "attack"}}


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def incidents(alerts: Path) -> dict:
    """What on-call sees: the alerted keys (highest severity) and the cluster incidents
    (members of each incident's last alert)."""
    order = {"info": 0, "warning": 1, "high": 2, "critical": 3}
    keys: dict[str, str] = {}
    clusters: dict[str, list[str]] = {}
    for line in open(alerts, encoding="utf-8"):
        alert = json.loads(line)
        if alert["entity_type"] == "cluster":
            clusters[alert["alert_id"]] = sorted(alert["api_key_ids"])
        else:
            previous = keys.get(alert["entity_id"])
            if previous is None or order.get(alert["severity"], 0) > order.get(previous, 0):
                keys[alert["entity_id"]] = alert["severity"]
    return {"keys": keys, "clusters": sorted(clusters.values())}


def compare(before: dict, after: dict, labels: dict) -> dict:
    only_before = sorted(set(before["keys"]) - set(after["keys"]))
    only_after = sorted(set(after["keys"]) - set(before["keys"]))
    severity = sorted(k for k in set(before["keys"]) & set(after["keys"]) if before["keys"][k] != after["keys"][k])
    describe = lambda k: f"{k} ({labels[k]['label']}/{labels[k]['scenario']})" if k in labels else k  # noqa: E731
    return {
        "alerted_keys_before": len(before["keys"]), "alerted_keys_after": len(after["keys"]),
        "keys_only_before": [describe(k) for k in only_before], "keys_only_after": [describe(k) for k in only_after],
        "severity_changed": [f"{describe(k)}: {before['keys'][k]} -> {after['keys'][k]}" for k in severity],
        "cluster_incidents_before": len(before["clusters"]), "cluster_incidents_after": len(after["clusters"]),
        "cluster_incidents_identical": before["clusters"] == after["clusters"],
    }


def markdown(payload: dict) -> str:
    c = payload["cost"]
    lines = ["# Text normalisation benchmark", "",
             f"Command: `python benchmarks/normalise.py {' '.join(sys.argv[1:])}`; before = `{payload['before_rev']}`"
             + (f" (detection figures from the full run of {payload['detection_generated_at']})"
                if "detection_generated_at" in payload else ""),
             f"Machine: {platform.machine()}, Python {platform.python_version()}, one process (shared 2-core box).", "",
             "## Cost (dev-s1 events, featurize only; CPU time, best of repeats per 500-event chunk, "
             "before/after interleaved)", "",
             "| | before | after | after/before |", "|---|---|---|---|",
             f"| featurize us/event | {c['featurize_us_before']} | {c['featurize_us_after']} | {c['ratio_after_before']} |",
             f"| events/s (featurize only) | {c['events_per_second_before']} | {c['events_per_second_after']} | |", "",
             f"{c['events']} events, ASCII-only prompts {c['ascii_share']:.1%}; `normalise` alone: "
             f"{c['normalise_us_ascii']} us per ASCII prompt, {c['normalise_us_non_ascii']} us per non-ASCII prompt.", "",
             "## Detection (replay + ../shared/tools/score.py)", "",
             "| stream | features | key recall | campaign recall | benign FPR | replay events/s |", "|---|---|---|---|---|---|"]
    for row in payload["detection"]:
        lines.append(f"| {row['stream']} | {row['features']} | {_round(row['key_recall'])} | "
                     f"{_round(row['campaign_recall'])} | {_round(row['benign_fpr'])} | {row['events_per_second']} |")
    lines += ["", "Obfuscated dev-s1, key recall per attack scenario (before -> after):", ""]
    det = {(r["stream"], r["features"]): r for r in payload["detection"]}
    b, a = det[("dev-s1-obfuscated", "before")], det[("dev-s1-obfuscated", "after")]
    lines += [f"- {name}: {_round(b['per_scenario_recall'][name])} -> {_round(a['per_scenario_recall'].get(name))}"
              for name in b["per_scenario_recall"]]
    lines += ["", "Replay events/s are wall-clock on a loaded shared box (five engineers): compare the "
              "featurize CPU-time figures above, not these.", "",
              "Tricks per campaign: " + ", ".join(f"{k}={v}" for k, v in sorted(payload["tricks"].items())), "",
              "## dev-s1 unchanged?", ""]
    d = payload["dev_s1_diff"]
    lines += [f"- alerted keys: {d['alerted_keys_before']} before, {d['alerted_keys_after']} after",
              f"- keys alerted only before: {d['keys_only_before'] or 'none'}",
              f"- keys alerted only after: {d['keys_only_after'] or 'none'}",
              f"- highest severity changed: {d['severity_changed'] or 'none'}",
              f"- cluster incidents: {d['cluster_incidents_before']} before, {d['cluster_incidents_after']} after, "
              f"identical member lists: {d['cluster_incidents_identical']}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="git revision whose models/features.py is 'before' "
                                         "(default: the parent of the commit that added models/normalise.py)")
    parser.add_argument("--sample", type=int, default=40_000, help="dev-s1 events timed (default 40000)")
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats per chunk, best kept (default 5)")
    parser.add_argument("--results-name", default="normalise",
                        help="write benchmarks/results/NAME.{json,md} (default normalise)")
    parser.add_argument("--cost-only", action="store_true",
                        help="skip the replays (keep the detection figures of the last full run)")
    args = parser.parse_args()
    before_rev = _before_rev(args.before)
    before_source = _old_features_source(before_rev)
    WORK.mkdir(parents=True, exist_ok=True)
    before_file = WORK / "features_before.py"
    before_file.write_text(before_source, encoding="utf-8")
    payload: dict = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "before_rev": subprocess.run(["git", "rev-parse", "--short", before_rev], cwd=ROOT, check=True,
                                                  capture_output=True, text=True).stdout.strip(),
                     "cost": measure_cost(before_source, args.sample, args.repeat)}
    print(json.dumps(payload["cost"]), flush=True)
    if args.cost_only:
        if (RESULTS / f"{args.results_name}.json").exists():
            last = json.loads((RESULTS / f"{args.results_name}.json").read_text())
            if "detection" in last:
                payload.update({k: last[k] for k in ("tricks", "detection", "dev_s1_diff")})
                payload["detection_generated_at"] = last.get("detection_generated_at", last["generated_at"])
    else:
        obfuscated = WORK / f"dev-s1-obfuscated-{len(TRICKS)}-tricks"  # (built again when tricks are added)
        payload["tricks"] = build_obfuscated(obfuscated)
        labels = {row["api_key_id"]: row for row in csv.DictReader(open(DEV / "labels.csv"))}
        payload["detection"], seen = [], {}
        for stream_name, stream in (("dev-s1", DEV), ("dev-s1-obfuscated", obfuscated)):
            for label, features_file in (("before", before_file), ("after", None)):
                alerts = WORK / f"{stream_name}-{label}.alerts.jsonl"
                run = replay(stream, alerts, features_file)
                row = {"stream": stream_name, "features": label, **score(stream, alerts),
                       "events_per_second": round(run["events"] / run["seconds"]), "alerts": run["alerts"]}
                payload["detection"].append(row)
                seen[(stream_name, label)] = incidents(alerts)
                print(json.dumps({k: v for k, v in row.items() if k != "per_scenario_recall"}), flush=True)
        payload["dev_s1_diff"] = compare(seen[("dev-s1", "before")], seen[("dev-s1", "after")], labels)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if "detection" in payload:
        (RESULTS / f"{args.results_name}.md").write_text(markdown(payload))
    (RESULTS / f"{args.results_name}.json").write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
