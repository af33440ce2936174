"""The shipped ``deploy/alertmanager/alertmanager.yml``: valid for the installed amtool, and its route tree
sends the router's alerts (labels from ``sinks/routing/alertmanager.py``) where it says it does."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from distillguard.sinks.routing import alertmanager as am

CONFIG = Path(__file__).parents[3] / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"  # no skip: make test installs it


def receivers_for(labels: dict[str, str]) -> list[str]:
    result = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={CONFIG}",
                             *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(",")


def router_labels(entity_type: str, severity: str) -> dict[str, str]:
    return am.labels({"entity_type": entity_type, "entity_id": "e1", "severity": severity, "dedup_key": "dg:x"})


def test_the_shipped_config_passes_amtool_check_config():
    result = subprocess.run([AMTOOL, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("entity_type, severity, expected", [
    ("key", "critical", ["oncall-pagerduty", "abuse-slack", "gateway-webhook"]),
    ("cluster", "critical", ["oncall-pagerduty", "secops-opsgenie", "abuse-slack", "gateway-webhook"]),
    ("cluster", "warning", ["secops-opsgenie", "abuse-slack", "gateway-webhook"]),
    ("key", "info", ["abuse-slack", "gateway-webhook"]),
])
def test_the_route_tree_sends_incidents_by_severity_and_entity(entity_type, severity, expected):
    assert receivers_for(router_labels(entity_type, severity)) == expected


def test_the_pipelines_own_alerts_go_to_the_platform_on_call_only():
    assert receivers_for({"alertname": "DistillguardWorkerDown", "severity": "critical"}) == ["platform-pagerduty"]
