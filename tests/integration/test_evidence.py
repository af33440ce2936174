"""``distillguard evidence``: a forensic bundle from ClickHouse (chDB), without prompt text."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from distillguard.devtools.demo_traffic import demo_events

SEED = """
import json, sys
from distillguard.dashboard.server import data_dir_settings, seed_demo
from distillguard.contracts.feedback import Feedback
from distillguard.sinks.clickhouse import ClickHouseSink
settings = data_dir_settings(sys.argv[1])
seed_demo(settings)
sink = ClickHouseSink(settings)
record = Feedback.new("key", "demo_sweeper", "ack", reason="looking at it", actor="carol")
for _ in range(2):  # stored twice (two workers read it): one row
    sink.add_feedback(Feedback.parse(record.to_bytes()))
sink.flush()
print(json.dumps(sink.client.query("SELECT alert_id, entity_type FROM distillguard.alerts FINAL").result_rows))
sink.close()
"""


def _cli(*args, data_dir):
    env = {**os.environ, "DG_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_evidence_bundle_for_key_and_cluster_incidents(tmp_path):
    data = tmp_path / "data"
    seeded = subprocess.run([sys.executable, "-c", SEED, str(data)], capture_output=True, text=True, timeout=300)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    alerts = dict(json.loads(seeded.stdout.strip().splitlines()[-1]))
    cluster_id = next(a for a, kind in alerts.items() if kind == "cluster")

    # By router dedup key: the on-call has it from the page.
    done = _cli("evidence", "dg:key:demo_sweeper:1", "--out", str(tmp_path / "key"), data_dir=data)
    assert done.returncode == 0, done.stderr[-2000:]
    bundle = json.loads((tmp_path / "key" / "evidence.json").read_text())
    assert bundle["incident"] == "key:demo_sweeper:1" and bundle["member_keys"] == ["demo_sweeper"]
    assert bundle["signals"][0]["signal"] == "extraction_style_share"
    [key] = bundle["keys"]
    [activity] = bundle["activity"]
    assert key["events"] == activity["events"] == sum(e["api_key_id"] == "demo_sweeper" for e in demo_events())
    assert sum(h["events"] for h in bundle["hourly"]) == key["events"]
    assert [(f["action"], f["actor"]) for f in bundle["feedback"]] == [("ack", "carol")]
    summary = (tmp_path / "key" / "summary.md").read_text()
    assert "# Evidence: incident `key:demo_sweeper:1`" in summary and "ack by carol" in summary

    # By entity, for the hydra cluster, prompts opted in: there is no stored text to add.
    done = _cli("evidence", cluster_id, "--out", str(tmp_path / "cluster"), "--include-prompts", data_dir=data)
    assert done.returncode == 0, done.stderr[-2000:]
    bundle = json.loads((tmp_path / "cluster" / "evidence.json").read_text())
    assert bundle["entity"]["type"] == "cluster" and len(bundle["member_keys"]) >= 10
    assert {k["api_key_id"] for k in bundle["keys"]} == set(bundle["member_keys"])
    assert bundle["prompt_text"].startswith("requested, but distillguard stores no prompt text")
    text = (tmp_path / "cluster" / "evidence.json").read_text() + (tmp_path / "key" / "evidence.json").read_text()
    prompts = {e["prompt"] for e in demo_events() if len(e["prompt"]) > 20}
    assert not [p for p in prompts if p in text]

    missing = _cli("evidence", "key:nobody:1", "--out", str(tmp_path / "none"), data_dir=data)
    assert missing.returncode == 2 and "no incident" in missing.stderr
