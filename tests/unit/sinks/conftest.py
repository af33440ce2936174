"""Shared routes and alerts for the routing unit tests."""
from __future__ import annotations

import pytest

from distillguard.sinks.routing.routes import parse_routes

ROUTES = """
dashboard_url: https://grafana.example/d/dg
lifecycle: {auto_resolve_after_s: 60, escalate_score_delta: 0.1, cluster_growth: 1.5, resolved_ttl_s: 600,
            false_positive_ttl_s: 3600}
allowlist: {entities: ["key:internal-eval"], api_key_ids: [partner-1, partner-2]}
actions:
  rules:
    - {match: {severity: [critical], entity_type: [cluster]}, action: require_verification}
    - {match: {severity: [warning, critical]}, action: perturb_outputs}
    - {match: {}, action: throttle}
"""

def make_alert(entity_id="k1", *, entity_type="key", severity="warning", score=0.6, keys=None, n=1, **extra):
    return {"schema": "distill.alert.v1", "alert_id": f"{entity_type}:{entity_id}:{n}", "ts": "2026-02-01T10:00:00Z",
            "entity_type": entity_type, "entity_id": entity_id, "api_key_ids": keys or [entity_id],
            "score": score, "severity": severity, "events_seen": 120, "detector": "test/1",
            "reasons": [{"signal": "extraction_style_share", "value": 0.81, "baseline": 0.05, "weight": 1.6},
                        {"signal": "topic_novelty", "value": 0.7, "baseline": 0.5, "weight": 0.6}], **extra}


@pytest.fixture
def config():
    return parse_routes(ROUTES)


@pytest.fixture
def routes_text():
    return ROUTES


@pytest.fixture(name="make_alert")
def make_alert_fixture():
    return make_alert
