"""docker-compose.yml, deploy/prometheus and the image: every web endpoint that listens beyond
loopback gets the token, and Prometheus sends it (deploy/k8s: tests/unit/deploy/test_deploy_k8s.py)."""
from __future__ import annotations

from pathlib import Path

import yaml

from distillguard.streams.web import is_loopback

ROOT = Path(__file__).resolve().parents[3]
BIND_SETTINGS = {"worker": "DG_WEB_BIND", "router": "DG_ROUTER_WEB_BIND", "dashboard": "DG_DASHBOARD_HOST"}
FORMER_NAMES = ("DG_WEB_HOST", "DG_ROUTER_WEB_HOST")  # still read, but say what they do no longer


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_listening_beyond_loopback_require_the_token():
    services = _compose()["services"]
    for name, bind_setting in BIND_SETTINGS.items():
        env = services[name]["environment"]
        assert not is_loopback(env[bind_setting]), name  # reached from other containers
        # ${VAR:?message}: compose refuses to start without it, rather than start a worker that exits 2
        assert env["DG_WEB_TOKEN"].startswith("${DG_WEB_TOKEN:?"), name
        assert not set(FORMER_NAMES) & set(env), name


def test_prometheus_sends_the_token_it_is_given():
    compose = _compose()
    assert compose["secrets"]["web_token"] == {"environment": "DG_WEB_TOKEN"}
    assert "web_token" in compose["services"]["prometheus"]["secrets"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"distillguard-workers", "distillguard-router"} <= set(jobs)
    for job in jobs.values():
        assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/web_token"}, job


def test_the_image_does_not_expose_the_endpoint_by_itself():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    env_lines = [line for line in dockerfile.splitlines() if line.startswith("ENV ")]
    assert not [line for line in env_lines if "WEB_HOST" in line or "WEB_BIND" in line], env_lines
