"""``distillguard replay`` and the streaming worker raise the same alerts for the same input."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

from distillguard.demo_traffic import demo_events, iter_encoded


def _incidents(alerts: list[dict]) -> set[tuple]:
    # Kafka may re-deliver (at-least-once), so compare the distinct (incident, severity) pairs.
    return {(a["alert_id"], a["entity_type"], a["entity_id"], a["severity"]) for a in alerts}


def test_replay_and_worker_agree(pipeline, tmp_path):
    events = demo_events(seed=23, users=60, campaign_events=700)
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")
        fh.write("{broken line\n")
    out, dlq = tmp_path / "alerts.jsonl", tmp_path / "dlq.jsonl"
    run = subprocess.run([sys.executable, "-m", "distillguard.cli", "replay", str(path), "--alerts", str(out),
                          "--dlq", str(dlq), "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    replayed = [json.loads(line) for line in out.read_text().splitlines()]
    bad = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert len(bad) == 1 and bad[0]["reason"].startswith("not JSON")
    assert replayed, "the demo campaign must alert in replay"

    worker = pipeline.start_worker()
    pipeline.produce(list(iter_encoded(events)))
    pipeline.wait_processed(worker, len(events))
    streamed = pipeline.alerts(expect=len(replayed))
    assert _incidents(streamed) == _incidents(replayed)
