"""Per-entity overrides of the key detector, as an operator sets them: a file, read by the
workers (DG_DETECTOR_OVERRIDES_FILE) and by ``distillguard replay --overrides``."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distillguard.devtools.demo_traffic import demo_events
from distillguard.errors import ConfigError, OverridesError
from distillguard.models.pipeline import DetectorConfig
from distillguard.streams.settings import WorkerSettings

OVERRIDES = """\
# the CI harness's key never pages; the eval team's keys need a higher score
allow_keys: [demo_sweeper]
allow_accounts: [acct_research]
key_threshold_scale: {key_eval_1: 1.5}
account_threshold_scale: {acct_big_reseller: 1.2}
thresholds: [0.55, 0.7, 0.85]
min_events: 80
critical_min_events: 30
"""


def test_an_overrides_file_sets_every_overridable_setting(tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text(OVERRIDES)
    config = WorkerSettings(detector_overrides_file=path).detector_config()
    assert config.allow_keys == {"demo_sweeper"} and config.allow_accounts == {"acct_research"}
    assert config.key_threshold_scale == {"key_eval_1": 1.5}
    assert config.account_threshold_scale == {"acct_big_reseller": 1.2}
    assert config.thresholds == (0.55, 0.7, 0.85) and config.min_events == 80
    assert config.critical_min_events == 30
    assert WorkerSettings().detector_config() == DetectorConfig()  # no file: the defaults


@pytest.mark.parametrize("text, says", [
    ("allow_key: [x]", "unknown detector setting 'allow_key'"),
    ("thresholds: [0.8, 0.6, 0.9]", "three increasing numbers"),
    ("thresholds: [0.5, 0.6]", "three increasing numbers"),
    ("min_events: 0", "min_events"),
    ("critical_min_events: 1.5", "critical_min_events: a whole number"),
    ("allow_keys: key_a", "allow_keys: a list of ids"),
    ("key_threshold_scale: {key_a: -1}", "a number above 0"),
    ("key_threshold_scale: {key_a: yes}", "a number above 0"),
    ("- just a list", "must be a mapping"),
    ("allow_keys: [unclosed", "while parsing"),
])
def test_a_bad_overrides_file_is_refused_with_its_name_and_reason(tmp_path, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(OverridesError) as err:
        WorkerSettings(detector_overrides_file=path).detector_config()
    assert str(path) in str(err.value) and says in str(err.value)
    assert isinstance(err.value, ConfigError)  # one kind of error for every bad configuration


def test_a_missing_overrides_file_is_refused(tmp_path):
    with pytest.raises(OverridesError, match="detector overrides .*missing.yaml"):
        WorkerSettings(detector_overrides_file=tmp_path / "missing.yaml").detector_config()


def _replay(tmp_path, *extra) -> tuple[int, list[dict], str]:
    events = tmp_path / "events.jsonl"
    if not events.exists():
        events.write_text("".join(json.dumps(e) + "\n" for e in demo_events(seed=7, users=20, campaign_events=300)))
    alerts = tmp_path / "alerts.jsonl"
    done = subprocess.run([sys.executable, "-m", "distillguard.cli", "replay", str(events), "--alerts", str(alerts),
                           "-q", *extra], capture_output=True, text=True, timeout=120)
    rows = [json.loads(line) for line in alerts.read_text().splitlines()] if alerts.exists() else []
    return done.returncode, rows, done.stderr


def test_replay_backtests_an_overrides_file(tmp_path):
    code, alerts, _ = _replay(tmp_path)
    assert code == 0 and any(a["entity_id"] == "demo_sweeper" for a in alerts)
    path = tmp_path / "overrides.yaml"
    path.write_text(OVERRIDES)
    code, alerts, _ = _replay(tmp_path, "--overrides", str(path))
    assert code == 0 and not any(a["entity_id"] == "demo_sweeper" for a in alerts)
    path.write_text("allow_key: [demo_sweeper]")
    code, _, stderr = _replay(tmp_path, "--overrides", str(path))
    assert code == 2 and "unknown detector setting 'allow_key'" in stderr


def test_a_worker_with_a_bad_overrides_file_stops_at_start_with_the_reason(tmp_path):
    import os

    path = tmp_path / "bad.yaml"
    path.write_text("min_events: many")
    env = {**os.environ, "DG_DETECTOR_OVERRIDES_FILE": str(path), "DG_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "distillguard.cli", "worker"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 2
    assert "distillguard worker: detector overrides" in done.stderr and "min_events" in done.stderr
