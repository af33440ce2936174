"""What the router posts to Alertmanager's v2 API for an incident (pure: no I/O, time passed in).

Alertmanager keeps alerts in memory and expects its clients to post to every replica and to
re-post active alerts before they end: an alert whose ``endsAt`` passes is resolved on its
own. So an open incident is posted on every router tick with a short ``endsAt`` (a few
ticks): a restarted replica has it again within one tick, and an incident whose router dies
resolves itself instead of firing forever. A resolved incident is posted once more with
``endsAt`` = now (explicitly resolved on every replica). A snooze is a silence on the
entity's labels. Receivers, grouping, inhibition and time intervals are Alertmanager's
(``deploy/alertmanager/alertmanager.yml``), not ours.

The label set identifies the incident (Alertmanager's fingerprint): the same labels posted
again are the same alert, never a second page.
"""
from __future__ import annotations

from distillguard.contracts.alert import iso_ms

from .text import dashboard_link, reason_lines, summary

ALERTNAME = "DistillationCampaign"
SOURCE = "distillguard"


def labels(state: dict, severity: str | None = None) -> dict[str, str]:
    """The incident's identity (and what Alertmanager routes, groups and silences on).

    >>> labels({"entity_type": "key", "entity_id": "k1", "severity": "warning", "dedup_key": "dg:key:k1:1"})
    {'alertname': 'DistillationCampaign', 'source': 'distillguard', 'entity_type': 'key', 'entity_id': 'k1', \
'severity': 'warning', 'dedup_key': 'dg:key:k1:1'}
    """
    return {"alertname": ALERTNAME, "source": SOURCE, "entity_type": state["entity_type"],
            "entity_id": state["entity_id"], "severity": severity or state["severity"],
            "dedup_key": state["dedup_key"]}


def annotations(state: dict, dashboard_url: str) -> dict[str, str]:
    """What a receiver shows: summary, reasons, the incident and a dashboard link (never prompt text)."""
    return {"summary": summary(state), "description": "\n".join(reason_lines(state)),
            "incident": state["alert_id"], "status": state["status"], "resolution": state.get("resolution", ""),
            "member_keys": str(state["members"]), "score": f"{state['score']:.3f}",
            "dashboard": dashboard_link(dashboard_url, state)}


def _alert(state: dict, dashboard_url: str, ends_ms: int, severity: str | None = None) -> dict:
    return {"labels": labels(state, severity), "annotations": annotations(state, dashboard_url),
            "startsAt": iso_ms(state["opened_ms"]), "endsAt": iso_ms(ends_ms),
            "generatorURL": dashboard_link(dashboard_url, state)}


def incident_alerts(state: dict, now_ms: int, firing_for_ms: int, dashboard_url: str) -> list[dict]:
    """The alerts to post for one incident now: firing until ``now + firing_for_ms``, or resolved now.

    An escalation to a higher severity is a new label set, so the previous severity's alert
    is ended in the same post (one page per incident, at its current severity).

    >>> state = {"entity_type": "key", "entity_id": "k1", "severity": "critical", "prev_severity": "warning",
    ...          "dedup_key": "dg:key:k1:1", "alert_id": "key:k1:1", "status": "escalated", "members": 1,
    ...          "score": 0.9, "opened_ms": 0, "reasons": []}
    >>> [(a["labels"]["severity"], a["endsAt"]) for a in incident_alerts(state, 60_000, 15_000, "http://g/d/x")]
    [('critical', '1970-01-01T00:01:15.000Z'), ('warning', '1970-01-01T00:01:00.000Z')]
    >>> state["status"] = "resolved"
    >>> [(a["labels"]["severity"], a["endsAt"]) for a in incident_alerts(state, 60_000, 15_000, "http://g/d/x")]
    [('critical', '1970-01-01T00:01:00.000Z'), ('warning', '1970-01-01T00:01:00.000Z')]
    """
    active = state["status"] != "resolved"
    alerts = [_alert(state, dashboard_url, now_ms + firing_for_ms if active else now_ms)]
    if state.get("prev_severity") and state["prev_severity"] != state["severity"]:
        alerts.append(_alert(state, dashboard_url, now_ms, state["prev_severity"]))
    return alerts


def silence(entity_type: str, entity_id: str, *, now_ms: int, until_ms: int, actor: str, reason: str) -> dict:
    """``POST /api/v2/silences`` body muting one entity's alerts from now until ``until_ms``.

    >>> body = silence("key", "k1", now_ms=0, until_ms=3_600_000, actor="oncall", reason="load test")
    >>> [(m["name"], m["value"]) for m in body["matchers"]], body["endsAt"], body["createdBy"]
    ([('source', 'distillguard'), ('entity_type', 'key'), ('entity_id', 'k1')], '1970-01-01T01:00:00.000Z', 'oncall')
    """
    matchers = [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in (("source", SOURCE), ("entity_type", entity_type), ("entity_id", entity_id))]
    return {"matchers": matchers, "startsAt": iso_ms(now_ms), "endsAt": iso_ms(until_ms),
            "createdBy": actor or SOURCE, "comment": f"distillguard snooze: {reason}" if reason else
            "distillguard snooze"}
