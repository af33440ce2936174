"""Incident lifecycle per entity: open, escalated, acknowledged, resolved (pure, JSON state).

One incident per entity (``key:ID``, ``account:ID``, ``cluster:ID``) at a time: alerts for
an entity with an active incident update it, and re-notify (escalate) only when its severity
rises, its score rises by ``escalate_score_delta`` or its cluster grows by ``cluster_growth``
since the last notification. An incident that stays quiet for ``auto_resolve_after_s`` is
resolved; a resolved one is kept ``resolved_ttl_s`` (so a late re-delivery of its alerts
does not page again) and then expires, which bounds the router's table.

The state is a small JSON-able dict (strings and numbers, a few short lists), stored as
bytes in a changelogged Faust table. Paging is Alertmanager's: the router re-posts every
active incident on each tick (same labels, same ``dedup_key``: Alertmanager's fingerprint,
never a second page), and a resolved one to each replica until it took the resolve
(:func:`owes_resolve`, :func:`mark_resolve_posted`: a bit per replica).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from distillguard.contracts.alert import Severity

from .routes import Lifecycle, cluster_kind

ACTIVE = ("open", "escalated", "acknowledged")
MAX_REASONS = 5


@dataclass(frozen=True, slots=True)
class Transition:
    """The new state (None = delete it) and what happened, for logs and metrics."""

    state: dict | None
    change: str  # opened | escalated | updated | ignored | acknowledged | resolved | expired | none
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.change not in ("none", "ignored")


def entity_key(entity_type: str, entity_id: str) -> str:
    return f"{entity_type}:{entity_id}"


def dedup_key_for(alert_id: str, reopened: int = 0) -> str:
    """Stable per incident: derived from the detector's alert id, so it survives a lost state."""
    key = f"dg:{alert_id}" + (f":r{reopened}" if reopened else "")
    if len(key) > 200:  # PagerDuty allows 255 characters, Opsgenie aliases 512
        key = "dg:" + hashlib.sha256(key.encode()).hexdigest()[:40]
    return key


def encode(state: dict) -> bytes:
    return json.dumps(state, separators=(",", ":"), sort_keys=True).encode()


def decode(value: bytes | None) -> dict | None:
    return json.loads(value) if value else None


def _members(alert: dict) -> int:
    return len(alert.get("api_key_ids") or [])


def alert_ms(alert: dict) -> int:
    """The alert's event time in ms (0 when it cannot be read)."""
    try:
        return int(datetime.fromisoformat(str(alert.get("ts", "")).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


def _refresh(state: dict, alert: dict, now_ms: int) -> None:
    """Copy the alert's current facts into the state (bounded); an older alert only counts as activity."""
    state["updated_ms"] = now_ms
    ts_ms = alert_ms(alert)
    if ts_ms < state.get("alert_ms", 0):
        return  # re-read or out of order: keep the newer facts
    state["alert_ms"] = ts_ms
    state["last_alert_id"] = alert["alert_id"]
    state["score"] = float(alert.get("score", 0.0))
    state["members"] = _members(alert)
    # Every key, not a sample: distill.actions enforces on all of them (actions.py pages them).
    # As big as the alert that carried them, which Kafka's message size bounds.
    state["keys"] = list(alert.get("api_key_ids") or [])
    state["reasons"] = list(alert.get("reasons") or [])[:MAX_REASONS]
    state["cluster_kind"] = cluster_kind(alert)  # (from every reason, before they are cut)
    state["events_seen"] = int(alert.get("events_seen", 0) or 0)
    state["alert_ts"] = alert.get("ts", "")
    state["detector"] = alert.get("detector", "")
    if alert.get("org_id"):
        state["org_id"] = alert["org_id"]


def _open(alert: dict, now_ms: int, partition: int, previous: dict | None) -> dict:
    reopened = 0
    if previous is not None and previous.get("alert_id") == alert["alert_id"]:
        # The detector still escalates an incident the router resolved: a new incident, new key.
        reopened = int(previous.get("reopened", 0)) + 1
    state = {
        "entity_type": alert["entity_type"], "entity_id": alert["entity_id"], "partition": partition,
        "status": "open", "alert_id": alert["alert_id"], "dedup_key": dedup_key_for(alert["alert_id"], reopened),
        "reopened": reopened, "version": 1, "severity": alert["severity"], "prev_severity": "",
        "opened_ms": now_ms, "resolved_ms": 0, "resolution": "", "fp_until_ms": 0,
        "notified_score": float(alert.get("score", 0.0)), "notified_members": _members(alert),
        "am_res": 0, "acted_v": 0, "action": "", "released": 0,
        "incidents": int(previous.get("incidents", 0)) + 1 if previous else 1,
    }
    _refresh(state, alert, now_ms)
    return state


def escalation(state: dict, alert: dict, lifecycle: Lifecycle) -> str:
    """Why this alert escalates the incident, or "" when it is only an update."""
    old_rank, new_rank = Severity.rank_of(state["severity"]), Severity.rank_of(alert["severity"])
    if new_rank > old_rank:
        return f"severity {state['severity']} -> {alert['severity']}"
    score = float(alert.get("score", 0.0))
    if score >= state["notified_score"] + lifecycle.escalate_score_delta:
        return f"score {state['notified_score']:.3f} -> {score:.3f}"
    members, notified = _members(alert), int(state["notified_members"])
    if notified > 1 and members > notified and members >= notified * lifecycle.cluster_growth:
        return f"{alert['entity_type']} grew from {notified} to {members} keys"
    return ""


def on_alert(state: dict | None, alert: dict, *, now_ms: int, partition: int, lifecycle: Lifecycle) -> Transition:
    """Apply one alert v1 to its entity's incident state."""
    if state is None:
        return Transition(_open(alert, now_ms, partition, None), "opened")
    if state["status"] == "resolved":
        if state.get("fp_until_ms", 0) > now_ms:
            return Transition(state, "ignored", "entity marked false positive")
        if alert_ms(alert) <= state.get("alert_ms", 0):
            # An alert from before the resolve, read again (restart, redelivery): not a new page.
            return Transition(state, "ignored", "not newer than the resolved incident's last alert")
        return Transition(_open(alert, now_ms, partition, state), "opened", "reopened after resolve")
    state = json.loads(json.dumps(state))  # the caller's dict is not changed
    why = escalation(state, alert, lifecycle)
    _refresh(state, alert, now_ms)
    if not why:
        return Transition(state, "updated")
    state["version"] += 1
    state["prev_severity"] = state["severity"]
    if Severity.rank_of(alert["severity"]) > Severity.rank_of(state["severity"]):
        state["severity"] = alert["severity"]
    state["notified_score"] = state["score"]
    state["notified_members"] = state["members"]
    state["status"] = "escalated"
    return Transition(state, "escalated", why)


def on_feedback(state: dict | None, action: str, *, now_ms: int, lifecycle: Lifecycle, actor: str = "",
                reason: str = "") -> Transition:
    """Apply an on-call's ``ack`` / ``resolve`` / ``false_positive`` to the incident."""
    if state is None:
        return Transition(None, "ignored", "no incident for this entity")
    state = json.loads(json.dumps(state))
    who = f"{actor}: {reason}" if reason else actor
    if action == "ack":
        if state["status"] not in ("open", "escalated"):
            return Transition(state, "ignored", f"incident is {state['status']}")
        state["status"] = "acknowledged"
        state["resolution"] = f"acknowledged by {who}"
        return Transition(state, "acknowledged", who)
    if action in ("resolve", "false_positive"):
        if action == "false_positive":
            state["fp_until_ms"] = now_ms + int(lifecycle.false_positive_ttl_s * 1000)
        if state["status"] == "resolved":
            return Transition(state, "updated" if action == "false_positive" else "ignored", "already resolved")
        state["status"] = "resolved"
        state["resolved_ms"] = now_ms
        state["resolution"] = ("false positive" if action == "false_positive" else "resolved") + f" by {who}"
        return Transition(state, "resolved", state["resolution"])
    return Transition(state, "ignored", f"unknown feedback action {action!r}")


def on_tick(state: dict, *, now_ms: int, lifecycle: Lifecycle) -> Transition:
    """Time passing: auto-resolve quiet incidents, expire old resolved ones."""
    if state["status"] in ACTIVE:
        quiet_ms = now_ms - state["updated_ms"]
        if quiet_ms >= lifecycle.auto_resolve_after_s * 1000:
            state = json.loads(json.dumps(state))
            state["status"] = "resolved"
            state["resolved_ms"] = now_ms
            state["resolution"] = f"auto-resolved: no alert for {quiet_ms // 1000}s"
            return Transition(state, "resolved", state["resolution"])
        return Transition(state, "none")
    if now_ms - state["resolved_ms"] >= lifecycle.resolved_ttl_s * 1000 and state.get("fp_until_ms", 0) <= now_ms:
        return Transition(None, "expired")
    return Transition(state, "none")


def owes_resolve(state: dict, replica: int) -> bool:
    """A resolved incident whose resolve Alertmanager replica number ``replica`` has not taken yet.

    >>> state = {"status": "resolved", "am_res": 0}
    >>> mark_resolve_posted(state, 1)
    >>> owes_resolve(state, 0), owes_resolve(state, 1), state["am_res"]
    (True, False, 2)
    """
    return state["status"] == "resolved" and not (state.get("am_res", 0) >> replica) & 1


def mark_resolve_posted(state: dict, replica: int) -> None:
    """Replica number ``replica`` took the resolve (in place): it is not posted there again."""
    state["am_res"] = state.get("am_res", 0) | (1 << replica)
