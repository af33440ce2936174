"""Recommended enforcement actions for the API gateway (topic ``distill.actions``), pure.

One record per incident version: the policy's action when an incident opens or escalates,
and one ``release`` when it is resolved (or found to be a false positive), so the gateway
can lift what it applied. ``action_id`` is stable per (incident, version, action), so a
record re-sent after a router restart is recognisably the same recommendation.
"""
from __future__ import annotations

from .lifecycle import ACTIVE
from .routes import ActionPolicy
from .text import iso, summary

SCHEMA = "distill.action.v1"


def _record(state: dict, action: str, now_ms: int, reason: str) -> dict:
    return {
        "schema": SCHEMA,
        "action_id": f"{state['dedup_key']}:v{state['version']}:{action}",
        "action": action,
        "incident": state["alert_id"],
        "dedup_key": state["dedup_key"],
        "version": state["version"],
        "entity_type": state["entity_type"],
        "entity_id": state["entity_id"],
        "api_key_ids": state["keys"],
        "member_keys": state["members"],
        "severity": state["severity"],
        "score": state["score"],
        "reason": reason,
        "ts": iso(now_ms),
    }


def next_action(state: dict, policy: ActionPolicy, now_ms: int) -> dict | None:
    """The action record this incident still owes the gateway, if any (the caller marks it sent)."""
    if state["status"] in ACTIVE:
        if state.get("acted_v", 0) >= state["version"]:
            return None
        facts = {"severity": state["severity"], "entity_type": state["entity_type"], "score": state["score"],
                 "org_id": state.get("org_id")}
        action = policy.action_for(facts)
        if action is None:
            return None
        if action == "suspend" and not policy.allow_suspend:  # the config validator forbids it too
            action = "require_verification"
        return _record(state, action, now_ms, summary(state))
    if state.get("acted_v", 0) > 0 and not state.get("released"):
        return _record(state, "release", now_ms, state.get("resolution", "resolved"))
    return None


def mark_acted(state: dict, record: dict) -> None:
    """Record (in place) that ``record`` was produced."""
    if record["action"] == "release":
        state["released"] = 1
    else:
        state["acted_v"] = record["version"]
        state["action"] = record["action"]
