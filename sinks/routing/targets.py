"""One class per target: turns an incident notification into the HTTP request(s) its API expects.

Pure: no network, the time is passed in. Each builder returns a list of :class:`HttpRequest`
(empty when the target has nothing to do for that event, e.g. Alertmanager has no
acknowledge). The formats follow the vendors' documentation:

* PagerDuty Events API v2: ``POST /v2/enqueue`` with ``routing_key``, ``event_action``
  (trigger / acknowledge / resolve), ``dedup_key``, ``payload`` {summary, source, severity,
  timestamp, component, group, class, custom_details} and ``links`` on triggers.
* Opsgenie Alert API: ``POST /v2/alerts`` (``Authorization: GenieKey …``, ``alias`` = dedup
  key), ``POST /v2/alerts/{alias}/acknowledge|close?identifierType=alias``, and
  ``PUT /v2/alerts/{alias}/priority?identifierType=alias`` on escalation (a repeated create
  only raises the alert's count).
* Slack incoming webhook: ``{text, blocks}`` — a readable message with the reasons and a
  link to the dashboard.
* Prometheus Alertmanager: ``POST /api/v2/alerts`` with a JSON list of {labels,
  annotations, startsAt, endsAt, generatorURL}; resolving = the same labels with ``endsAt`` now.
* Generic webhook: JSON body signed with HMAC-SHA256 over ``"<timestamp>." + body``, in
  ``X-Distillguard-Signature: sha256=<hex>`` with ``X-Distillguard-Timestamp``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote

from pydantic import SecretStr

from distillguard.sinks.dashboard_links import incident_link

from .routes import (AlertmanagerTarget, OpsgenieTarget, PagerDutyTarget, SlackTarget, TargetConfig,
                     WebhookTarget)

SIGNATURE_HEADER = "X-Distillguard-Signature"
TIMESTAMP_HEADER = "X-Distillguard-Timestamp"
DELIVERY_HEADER = "X-Distillguard-Delivery"
ALERTNAME = "DistillationCampaign"
SEVERITY_ORDER = {"info": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request to send. ``url`` may hold a secret (Slack): never log it, log ``target``."""

    target: str
    method: str
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    def json(self):
        return json.loads(self.body)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _json(body) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def summary(n: dict) -> str:
    """One line an on-call reads first."""
    what = "cluster of " if n["entity_type"] == "cluster" else ""
    keys = f", {n['members']} keys" if n["members"] > 1 else ""
    return (f"[{n['severity']}] model extraction suspected: {what}{n['entity_type']} {n['entity_id']} "
            f"(score {n['score']:.2f}{keys})")


def reason_lines(n: dict) -> list[str]:
    lines = []
    for r in n.get("reasons") or []:
        base = f" (baseline {r['baseline']})" if r.get("baseline") is not None else ""
        lines.append(f"{r['signal']}: {r.get('value')}{base}")
    return lines


def dashboard_link(dashboard_url: str, n: dict) -> str:
    return incident_link(dashboard_url, entity_type=n["entity_type"], entity_id=n["entity_id"],
                         api_key_ids=n.get("keys") or [], org_id=n.get("org_id"), ts_ms=n.get("alert_ms"))


def details(n: dict) -> dict:
    """The incident facts every target carries (no prompt text: the state never holds any)."""
    return {
        "incident": n["alert_id"], "dedup_key": n["dedup_key"], "version": n["version"],
        "entity_type": n["entity_type"], "entity_id": n["entity_id"], "severity": n["severity"],
        "score": n["score"], "events_seen": n["events_seen"], "member_keys": n["members"],
        "api_key_ids": n["keys"], "reasons": reason_lines(n), "detector": n["detector"],
        "last_alert_id": n["last_alert_id"], "status": n["status"],
        **({"org_id": n["org_id"]} if n.get("org_id") else {}),
    }


def group_of(n: dict) -> str:
    """What incidents are grouped by downstream: the campaign (cluster) or the single key/account."""
    return f"{n['entity_type']}:{n['entity_id']}"


class Target:
    """Base: a named target with its config and resolved secrets."""

    def __init__(self, name: str, config: TargetConfig, secrets: dict[str, SecretStr], *, dashboard_url: str,
                 auto_resolve_after_s: float) -> None:
        self.name = name
        self.config = config
        self._secrets = secrets
        self.dashboard_url = dashboard_url
        self.auto_resolve_after_s = auto_resolve_after_s

    @property
    def kind(self) -> str:
        return self.config.type

    def _secret(self, field_name: str) -> str:
        return self._secrets[field_name].get_secret_value()

    def build(self, n: dict, now_ms: int) -> list[HttpRequest]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:  # no secrets, no URLs
        return f"<{type(self).__name__} {self.name}>"


class PagerDuty(Target):
    SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}

    def build(self, n: dict, now_ms: int) -> list[HttpRequest]:
        body: dict = {"routing_key": self._secret("routing_key"), "event_action": n["event"],
                      "dedup_key": n["dedup_key"]}
        if n["event"] == "trigger":
            link = dashboard_link(self.dashboard_url, n)
            body["payload"] = {
                "summary": summary(n)[:1024],
                "source": "distillguard",
                "severity": self.SEVERITY[n["severity"]],
                "timestamp": n["alert_ts"] or iso(now_ms),
                "component": n["entity_type"],
                "group": group_of(n),
                "class": "model-extraction",
                "custom_details": details(n),
            }
            body["links"] = [{"href": link, "text": "distillguard dashboard"}]
            body["client"] = "distillguard"
            body["client_url"] = link
        return [HttpRequest(self.name, "POST", self.config.url, {"Content-Type": "application/json"},
                            _json(body))]


class Opsgenie(Target):
    PRIORITY = {"info": "P4", "warning": "P3", "critical": "P1"}

    def build(self, n: dict, now_ms: int) -> list[HttpRequest]:
        base = self.config.url.rstrip("/") + "/v2/alerts"
        headers = {"Content-Type": "application/json", "Authorization": f"GenieKey {self._secret('api_key')}"}
        alias = quote(n["dedup_key"], safe="")
        if n["event"] == "trigger":
            info = details(n)
            body = {
                "message": summary(n)[:130],
                "alias": n["dedup_key"],
                "description": "\n".join([summary(n), *info["reasons"], dashboard_link(self.dashboard_url, n)])[
                    :15000],
                "tags": ["distillguard", n["entity_type"], n["severity"]],
                "details": {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in info.items()},
                "entity": group_of(n),
                "source": "distillguard",
                "priority": self.PRIORITY[n["severity"]],
            }
            if self.config.responders:
                body["responders"] = self.config.responders
            requests = [HttpRequest(self.name, "POST", base, headers, _json(body))]
            if n["version"] > 1:  # an open alias is deduplicated: raise its priority explicitly
                requests.append(HttpRequest(self.name, "PUT", f"{base}/{alias}/priority?identifierType=alias",
                                            headers, _json({"priority": self.PRIORITY[n["severity"]]})))
            return requests
        verb = "acknowledge" if n["event"] == "acknowledge" else "close"
        body = {"user": "distillguard", "source": "distillguard", "note": n.get("resolution") or verb}
        return [HttpRequest(self.name, "POST", f"{base}/{alias}/{verb}?identifierType=alias", headers, _json(body))]


class Slack(Target):
    ICON = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}

    def build(self, n: dict, now_ms: int) -> list[HttpRequest]:
        link = dashboard_link(self.dashboard_url, n)
        if n["event"] == "trigger":
            head = "New incident" if n["version"] == 1 else f"Escalated (v{n['version']})"
            text = f"{self.ICON[n['severity']]} {head}: {summary(n)}"
        elif n["event"] == "acknowledge":
            text = f":eyes: Acknowledged: {summary(n)} — {n.get('resolution', '')}"
        else:
            text = f":white_check_mark: Resolved: {summary(n)} — {n.get('resolution', '')}"
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
        if n["event"] == "trigger":
            reasons = "\n".join(f"• {line}" for line in reason_lines(n)) or "• (no reasons given)"
            keys = ", ".join(n["keys"][:10]) + (f" … (+{n['members'] - 10})" if n["members"] > 10 else "")
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*Entity*\n{n['entity_type']} `{n['entity_id']}`"},
                {"type": "mrkdwn", "text": f"*Severity / score*\n{n['severity']} / {n['score']:.3f}"},
                {"type": "mrkdwn", "text": f"*Keys*\n{keys}"},
                {"type": "mrkdwn", "text": f"*Events seen*\n{n['events_seen']}"},
            ]})
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Why*\n{reasons}"}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"<{link}|Open in dashboard> · incident `{n['alert_id']}` · dedup `{n['dedup_key']}`"}]})
        return [HttpRequest(self.name, "POST", self._secret("webhook_url"), {"Content-Type": "application/json"},
                            _json({"text": text, "blocks": blocks}))]


    def build_group(self, notes: list[dict], now_ms: int) -> list[HttpRequest]:
        """One message for several new incidents (``group_wait_s``): a line, reasons and link each."""
        worst = max(notes, key=lambda n: SEVERITY_ORDER.get(n["severity"], 0))["severity"]
        text = f"{self.ICON[worst]} {len(notes)} new incidents: " + "; ".join(
            f"{n['entity_type']} {n['entity_id']} ({n['severity']}, {n['score']:.2f})" for n in notes)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{len(notes)} new incidents*"}}]
        for n in notes:
            reasons = "; ".join(reason_lines(n)[:3]) or "no reasons given"
            link = dashboard_link(self.dashboard_url, n)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                           f"{self.ICON[n['severity']]} *{summary(n)}*\n{reasons}\n"
                           f"<{link}|Open in dashboard> · dedup `{n['dedup_key']}`"}})
        return [HttpRequest(self.name, "POST", self._secret("webhook_url"), {"Content-Type": "application/json"},
                            _json({"text": text[:3000], "blocks": blocks}))]


class Alertmanager(Target):
    def _alert(self, n: dict, severity: str, starts_ms: int, ends_ms: int) -> dict:
        return {
            "labels": {"alertname": ALERTNAME, "entity_type": n["entity_type"], "entity_id": n["entity_id"],
                       "severity": severity, "dedup_key": n["dedup_key"], "source": "distillguard"},
            "annotations": {"summary": summary(n), "description": "\n".join(reason_lines(n)),
                            "incident": n["alert_id"], "dashboard": dashboard_link(self.dashboard_url, n),
                            "member_keys": str(n["members"])},
            "startsAt": iso(starts_ms),
            "endsAt": iso(ends_ms),
            "generatorURL": dashboard_link(self.dashboard_url, n),
        }

    def build(self, n: dict, now_ms: int) -> list[HttpRequest]:
        if n["event"] == "acknowledge":
            return []  # Alertmanager has no acknowledge; silences are an operator's tool
        if n["event"] == "trigger":
            # Firing until the router resolves it, or until the incident would auto-resolve anyway.
            alerts = [self._alert(n, n["severity"], n["opened_ms"],
                                  now_ms + int(self.auto_resolve_after_s * 1000))]
            if n.get("prev_severity") and n["prev_severity"] != n["severity"]:
                # severity is a label, so the escalated alert is a new series: end the old one.
                alerts.append(self._alert(n, n["prev_severity"], n["opened_ms"], now_ms))
        else:
            alerts = [self._alert(n, n["severity"], n["opened_ms"], now_ms)]
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        return [HttpRequest(self.name, "POST", url, {"Content-Type": "application/json"}, _json(alerts))]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"<timestamp>." + body`` (the timestamp stops replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver runs (constant-time compare)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Webhook(Target):
    def build(self, n: dict, now_ms: int) -> list[HttpRequest]:
        body = _json({
            "schema": "distill.incident.v1",
            "event": n["event"],
            "dedup_key": n["dedup_key"],
            "version": n["version"],
            "ts": iso(now_ms),
            "summary": summary(n),
            "dashboard_url": dashboard_link(self.dashboard_url, n),
            "resolution": n.get("resolution", ""),
            "incident": details(n),
        })
        timestamp = str(now_ms // 1000)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self._secret("secret"), timestamp, body),
                   DELIVERY_HEADER: f"{n['dedup_key']}:{n['event']}:{n['version']}"}
        url = self.config.url or self._secret("url")
        return [HttpRequest(self.name, "POST", url, headers, body)]


KINDS = {PagerDutyTarget: PagerDuty, OpsgenieTarget: Opsgenie, SlackTarget: Slack,
         AlertmanagerTarget: Alertmanager, WebhookTarget: Webhook}


def build_targets(config, secrets: dict[str, dict[str, SecretStr]]) -> dict[str, Target]:
    """Target name -> builder, from a :class:`~.routes.RoutesConfig` and its resolved secrets."""
    return {name: KINDS[type(cfg)](name, cfg, secrets.get(name, {}), dashboard_url=config.dashboard_url,
                                   auto_resolve_after_s=config.lifecycle.auto_resolve_after_s)
            for name, cfg in config.targets.items()}
