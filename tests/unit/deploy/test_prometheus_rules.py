"""The Prometheus alert rules on the pipeline's own health: loadable, and every metric they
name is one the worker exports (a renamed metric would silently never fire)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from distillguard.streams.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def exported() -> tuple[set[str], set[str]]:
    metrics = WorkerMetrics()
    labels = set()
    for attribute in vars(metrics).values():
        labels.update(getattr(attribute, "_labelnames", ()))
        if type(attribute).__name__ == "Histogram":
            labels.add("le")  # its buckets' bound: what histogram_quantile sums by
    return metrics.sample_names(), labels


def test_the_rules_file_is_loaded_by_the_prometheus_config():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, (rule["alert"], job)


def test_every_rule_names_exported_metrics_and_labels():
    names, labels = exported()
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {"DistillguardWorkerDown", "DistillguardPartitionStalled", "DistillguardHolesNotFilled",
            "DistillguardCommitsStalled", "DistillguardSinkFailing", "DistillguardTableRecoveryStalled",
            "DistillguardPartitionNewEpoch", "DistillguardPartitionEpochUndecided"} <= {r["alert"] for r in rules}
    for rule in rules:
        used = set(re.findall(r"distillguard_\w+", rule["expr"]))
        assert used <= names, (rule["alert"], used - names)
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert {b.strip() for b in by.split(",")} <= labels, (rule["alert"], by)
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]


def test_every_rule_links_to_its_section_of_the_runbook():
    runbook = (DEPLOY.parents[1] / "docs" / "runbook.md").read_text()
    sections = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    rules = [rule for group in yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        url = rule["annotations"].get("runbook_url", "")
        assert url == f"docs/runbook.md#{rule['alert'].lower()}", rule["alert"]
        assert rule["alert"].lower() in sections, f"docs/runbook.md has no section for {rule['alert']}"


def test_the_router_rules_name_the_routers_metrics_and_labels():
    from distillguard.streams.router import RouterMetrics

    metrics = RouterMetrics()
    names = {sample.name for family in metrics.registry.collect() for sample in family.samples} | {
        family.name for family in metrics.registry.collect()}
    labels = {label for attribute in vars(metrics).values() for label in getattr(attribute, "_labelnames", ())}
    groups = {g["name"]: g["rules"] for g in yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]}
    rules = groups["distillguard-router"]
    assert {"DistillguardRouterDown", "DistillguardAlertmanagerUnreachable"} <= {r["alert"] for r in rules}
    for rule in rules:
        used = set(re.findall(r"distillguard_\w+", rule["expr"]))
        assert used <= names, (rule["alert"], used - names)
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert {b.strip() for b in by.split(",")} <= labels, (rule["alert"], by)
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in {j["job_name"] for j in yaml.safe_load((DEPLOY / "prometheus.yml").read_text())[
                "scrape_configs"]}
