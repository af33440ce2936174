"""Replay's output does not depend on the process it runs in: a worker and ``distillguard
replay`` are separate processes, each with its own string-hash seed (``PYTHONHASHSEED``), so
anything that reads a set's order into an alert would make them disagree."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from distillguard.devtools.demo_traffic import demo_events

# Cue phrases of three languages in one prompt: which language an alert names came from a
# set's order (multilingual._cue_bits) until c796660.
MIXED_CUES = "\n\nResuelve paso a paso, luego Schritt für Schritt, и наконец шаг за шагом."


def test_replay_alerts_are_the_same_under_every_string_hash_seed(tmp_path):
    events = demo_events(seed=5, users=30, campaign_events=300, hours=3.0, hydra_keys=16)
    for event in events:
        if event["api_key_id"] == "demo_sweeper":
            event["prompt"] += MIXED_CUES
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(event) + "\n" for event in events))
    outputs = set()
    for seed in (1, 2, 3):
        alerts = tmp_path / f"alerts-{seed}.jsonl"
        subprocess.run([sys.executable, "-m", "distillguard.cli", "replay", str(stream), "--alerts", str(alerts),
                        "-q", "--jobs", "1"], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)})
        outputs.add(alerts.read_bytes())
    assert len(outputs) == 1
    lines = [json.loads(line) for line in outputs.pop().splitlines()]
    # the stream raises what the comparison is about: the sweep, with its cue language, and the hydra
    sweep = [a for a in lines if a["api_key_ids"] == ["demo_sweeper"]]
    assert sweep and {r["value"] for a in sweep for r in a["reasons"] if r["signal"] == "cue_language"} == {"es"}
    assert any(len(a["api_key_ids"]) >= 8 for a in lines)
