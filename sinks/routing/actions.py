"""Recommended enforcement actions for the API gateway (topic ``distill.actions``), pure.

One record per incident version: the policy's action when an incident opens or escalates,
and one ``release`` when it is resolved (or found to be a false positive), so the gateway
can lift what it applied. ``action_id`` is stable per (incident, version, action), so a
record re-sent after a router restart is recognisably the same recommendation.

A recommendation names every key of the incident (a 200-key hydra is enforced on 200 keys),
so a big one is sent as several messages, :func:`pages`: each carries ``page`` of ``pages``
and up to ``page_keys`` of the ``api_key_ids``, the same ``action_id`` and the whole count in
``member_keys``. A gateway applies each page to its keys; ``(action_id, page)`` names a message.
"""
from __future__ import annotations

from dataclasses import replace

from distillguard.contracts.action import Action
from distillguard.contracts.alert import Severity, iso_ms

from .lifecycle import ACTIVE
from .routes import ActionPolicy
from .text import summary


def _record(state: dict, action: str, now_ms: int, reason: str) -> Action:
    return Action(
        action_id=f"{state['dedup_key']}:v{state['version']}:{action}",
        action=action,
        incident=state["alert_id"],
        dedup_key=state["dedup_key"],
        version=state["version"],
        entity_type=state["entity_type"],
        entity_id=state["entity_id"],
        api_key_ids=tuple(state["keys"]),
        member_keys=state["members"],
        severity=Severity(state["severity"]),
        score=state["score"],
        reason=reason,
        ts=iso_ms(now_ms),
    )


# Keys per distill.actions message: 500 ids of up to ~200 bytes stay far below Kafka's 1 MiB.
ACTION_PAGE_KEYS = 500


def pages(record: Action, page_keys: int = ACTION_PAGE_KEYS) -> list[Action]:
    """``record`` as the messages that carry all its keys, ``page_keys`` at most in each.

    >>> record = _record({"dedup_key": "dg:x", "version": 1, "alert_id": "x", "entity_type": "cluster",
    ...                   "entity_id": "x", "keys": ["k1", "k2", "k3"], "members": 3, "severity": "warning",
    ...                   "score": 0.7}, "throttle", 0, "why")
    >>> [(p.page, p.pages, p.api_key_ids) for p in pages(record, page_keys=2)]
    [(1, 2, ('k1', 'k2')), (2, 2, ('k3',))]
    """
    if page_keys < 1:
        raise ValueError(f"page_keys must be at least 1, not {page_keys}")
    keys = record.api_key_ids
    chunks = [keys[start:start + page_keys] for start in range(0, len(keys), page_keys)] or [keys]
    return [replace(record, api_key_ids=chunk, page=number, pages=len(chunks))
            for number, chunk in enumerate(chunks, start=1)]


def next_action(state: dict, policy: ActionPolicy, now_ms: int) -> Action | None:
    """The action record this incident still owes the gateway, if any (the caller marks it sent)."""
    if state["status"] in ACTIVE:
        if state.get("acted_v", 0) >= state["version"]:
            return None
        # the kind recorded from the whole alert; a state from before it was recorded has its kept
        # reasons, the kind's reason first, which the rule reads instead (Match.matches)
        facts = {"severity": state["severity"], "entity_type": state["entity_type"], "score": state["score"],
                 "org_id": state.get("org_id"), "cluster_kind": state.get("cluster_kind"),
                 "reasons": state.get("reasons")}
        action = policy.action_for(facts)
        if action is None:
            return None
        if action == "suspend" and not policy.allow_suspend:  # the config validator forbids it too
            action = "require_verification"
        return _record(state, action, now_ms, summary(state))
    if state.get("acted_v", 0) > 0 and not state.get("released"):
        return _record(state, "release", now_ms, state.get("resolution", "resolved"))
    return None


def mark_acted(state: dict, record: Action) -> None:
    """Record (in place) that ``record`` was produced."""
    if record.action == "release":
        state["released"] = 1
    else:
        state["acted_v"] = record.version
        state["action"] = record.action
