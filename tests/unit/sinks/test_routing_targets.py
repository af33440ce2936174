"""Request builders: each target's documented shape, signatures, no secret where it does not belong."""
from __future__ import annotations

import json

import pytest

from distillguard.sinks.routing import lifecycle
from distillguard.sinks.routing.routes import resolve_secrets
from distillguard.sinks.routing.targets import (SIGNATURE_HEADER, TIMESTAMP_HEADER, build_targets, sign,
                                                 verify)

NOW = 1_770_000_123_456


@pytest.fixture
def targets(config, secrets_env):
    return build_targets(config, resolve_secrets(config, secrets_env))


@pytest.fixture
def incident(config, make_alert):
    alert = make_alert("k9", severity="critical", score=0.91)
    return lifecycle.on_alert(None, alert, now_ms=NOW - 1000, partition=0, targets=config.targets_for(alert),
                              lifecycle=config.lifecycle).state


def test_pagerduty_events_v2_shape(targets, incident, secrets_env):
    [req] = targets["pd"].build(lifecycle.notification(incident, "trigger"), NOW)
    body = req.json()
    assert req.method == "POST" and req.url == "http://pd.test/v2/enqueue"
    assert set(body) == {"routing_key", "event_action", "dedup_key", "payload", "links", "client", "client_url"}
    assert body["routing_key"] == secrets_env["PD_KEY"] and body["event_action"] == "trigger"
    assert body["dedup_key"] == "dg:key:k9:1"
    payload = body["payload"]
    assert set(payload) >= {"summary", "source", "severity", "timestamp", "custom_details"}
    assert payload["severity"] == "critical" and payload["timestamp"] == "2026-02-01T10:00:00Z"
    assert "k9" in payload["summary"] and len(payload["summary"]) <= 1024
    assert payload["custom_details"]["reasons"][0] == "extraction_style_share: 0.81 (baseline 0.05)"
    assert body["links"][0]["href"].startswith("https://grafana.example/d/distillguard-overview?")
    for event in ("acknowledge", "resolve"):
        [req] = targets["pd"].build(lifecycle.notification(incident, event), NOW)
        assert req.json() == {"routing_key": secrets_env["PD_KEY"], "event_action": event,
                              "dedup_key": "dg:key:k9:1"}


def test_opsgenie_alert_api_shape(targets, incident, secrets_env):
    [create] = targets["og"].build(lifecycle.notification(incident, "trigger"), NOW)
    assert create.url == "http://og.test/v2/alerts" and create.headers["Authorization"] == \
        f"GenieKey {secrets_env['OG_KEY']}"
    body = create.json()
    assert body["alias"] == "dg:key:k9:1" and len(body["message"]) <= 130 and body["priority"] == "P1"
    assert all(isinstance(v, str) for v in body["details"].values())
    [close] = targets["og"].build(lifecycle.notification(incident, "resolve"), NOW)
    assert close.url == "http://og.test/v2/alerts/dg%3Akey%3Ak9%3A1/close?identifierType=alias"
    [ack] = targets["og"].build(lifecycle.notification(incident, "acknowledge"), NOW)
    assert ack.url.endswith("/acknowledge?identifierType=alias") and ack.json()["source"] == "distillguard"
    escalated = {**incident, "version": 2}
    create, priority = targets["og"].build(lifecycle.notification(escalated, "trigger"), NOW)
    assert priority.method == "PUT" and priority.url.endswith("/priority?identifierType=alias")


def test_slack_message_is_readable_with_reasons_and_dashboard_link(targets, incident, secrets_env):
    [req] = targets["slack"].build(lifecycle.notification(incident, "trigger"), NOW)
    assert req.url == secrets_env["SLACK_URL"]
    body = req.json()
    assert body["text"].startswith(":rotating_light: New incident: [critical]")
    text = json.dumps(body["blocks"])
    assert "extraction_style_share: 0.81" in text and "Open in dashboard" in text and "grafana.example" in text
    [done] = targets["slack"].build(lifecycle.notification({**incident, "resolution": "resolved by al"},
                                                          "resolve"), NOW)
    assert done.json()["text"].startswith(":white_check_mark: Resolved") and "resolved by al" in done.json()["text"]


def test_alertmanager_v2_alert_list(targets, incident):
    [req] = targets["am"].build(lifecycle.notification(incident, "trigger"), NOW)
    assert req.url == "http://am.test:9093/api/v2/alerts"
    [alert] = req.json()
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert alert["labels"]["alertname"] == "DistillationCampaign" and alert["labels"]["severity"] == "critical"
    assert alert["endsAt"] > alert["startsAt"]
    escalated = {**incident, "version": 2, "prev_severity": "warning"}
    [req] = targets["am"].build(lifecycle.notification(escalated, "trigger"), NOW)
    new, old = req.json()
    assert old["labels"]["severity"] == "warning" and old["endsAt"] == "2026-02-02T02:42:03.456Z"
    assert targets["am"].build(lifecycle.notification(incident, "acknowledge"), NOW) == []
    [req] = targets["am"].build(lifecycle.notification(incident, "resolve"), NOW)
    assert req.json()[0]["endsAt"] == "2026-02-02T02:42:03.456Z"


def test_webhook_is_signed_and_verifiable(targets, incident, secrets_env):
    [req] = targets["hook"].build(lifecycle.notification(incident, "trigger"), NOW)
    ts = req.headers[TIMESTAMP_HEADER]
    assert req.headers[SIGNATURE_HEADER].startswith("sha256=")
    assert verify(secrets_env["HOOK_SECRET"], ts, req.body, req.headers[SIGNATURE_HEADER])
    assert not verify("wrong", ts, req.body, req.headers[SIGNATURE_HEADER])
    assert not verify(secrets_env["HOOK_SECRET"], ts, req.body + b" ", req.headers[SIGNATURE_HEADER])
    body = req.json()
    assert body["dedup_key"] == "dg:key:k9:1" and body["event"] == "trigger"
    assert secrets_env["HOOK_SECRET"] not in req.body.decode()


def test_hmac_known_answer():
    # RFC 4231-style check against hashlib: the signature is HMAC-SHA256("<ts>." + body).
    assert sign("key", "1", b"{}") == "sha256=" + __import__("hmac").new(b"key", b"1.{}", "sha256").hexdigest()


def test_targets_repr_holds_no_secret(targets, secrets_env, incident):
    text = repr(targets) + repr(targets["slack"].build(lifecycle.notification(incident, "trigger"), NOW))
    for value in secrets_env.values():
        assert value not in text


def test_slack_grouped_message_lists_every_incident(targets, config, make_alert):
    notes = []
    for i, severity in enumerate(["warning", "critical", "info"]):
        alert = make_alert(f"g{i}", severity=severity)
        state = lifecycle.on_alert(None, alert, now_ms=NOW, partition=0, targets=[], lifecycle=config.lifecycle).state
        notes.append(lifecycle.notification(state, "trigger"))
    [req] = targets["slack"].build_group(notes, NOW)
    body = req.json()
    assert body["text"].startswith(":rotating_light: 3 new incidents: key g0 (warning, 0.60)")
    assert len(body["blocks"]) == 4 and all("Open in dashboard" in json.dumps(b) for b in body["blocks"][1:])
    assert "dg:key:g2:1" in json.dumps(body["blocks"][3])
