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


def receivers_for(labels: dict[str, str], config: Path = CONFIG) -> list[str]:
    result = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={config}",
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


def test_the_commented_cohort_route_keeps_content_cohorts_off_the_pager(tmp_path):
    """The route the shipped file offers, commented, for content cohorts (docs/routing.md):
    uncommented, a critical cohort reaches the security queue, Slack and the gateway, not
    PagerDuty; a linked cluster still pages."""
    lines = CONFIG.read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if "entity_id=~\"cohort-.*\"" in line)
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    #   "))
    block = range(start, end)
    assert len(block) == 6, "the commented route: matchers, receiver, routes and its three receivers"
    for i in block:
        lines[i] = "    " + lines[i][len("    # "):]
    uncommented = tmp_path / "alertmanager.yml"
    uncommented.write_text("\n".join(lines))
    assert subprocess.run([AMTOOL, "check-config", str(uncommented)], capture_output=True, timeout=60).returncode == 0
    cohort = am.labels({"entity_type": "cluster", "entity_id": "cohort-latin-options-20260201", "severity": "critical",
                        "dedup_key": "dg:x"})
    assert receivers_for(cohort, uncommented) == ["secops-opsgenie", "abuse-slack", "gateway-webhook"]
    assert receivers_for(cohort) == ["oncall-pagerduty", "secops-opsgenie", "abuse-slack", "gateway-webhook"]
    linked = am.labels({"entity_type": "cluster", "entity_id": "20260201T0500Z", "severity": "critical",
                        "dedup_key": "dg:x"})
    assert receivers_for(linked, uncommented)[0] == "oncall-pagerduty"
