"""The action contract, ``distill.action.v1`` (``contracts/action.v1.schema.json``), as a type.

The router's recommended enforcement for the API gateway (topic ``distill.actions``): one
:class:`Action` per incident version and action, sent as one or more pages of its keys
(``sinks/routing/actions.py`` decides them); :meth:`Action.to_bytes` is a message,
:meth:`Action.parse` reads one back or says why it is not one (:class:`BadAction`).

>>> action = Action(action_id="dg:key:k1:1:v1:throttle", action="throttle", incident="key:k1:1",
...                 dedup_key="dg:key:k1:1", version=1, entity_type="key", entity_id="k1", api_key_ids=("k1",),
...                 member_keys=1, severity=Severity.WARNING, score=0.7, reason="extraction", ts="2026-02-02T02:40:00.000Z")
>>> Action.parse(action.to_bytes()) == action
True
>>> Action.parse(action.to_bytes().replace(b'"throttle"', b'"ban"'))
BadAction(reason="action 'ban' is not one of ('throttle', 'perturb_outputs', 'require_verification', 'suspend', 'release')")
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from .alert import Severity
from .wire import record_bytes, record_of

SCHEMA = "distill.action.v1"
ACTIONS = ("throttle", "perturb_outputs", "require_verification", "suspend", "release")
ENTITY_TYPES = ("key", "account", "cluster")


@dataclass(frozen=True, slots=True)
class BadAction:
    """Why a message on the actions topic is not an action v1: returned as data, never raised."""

    reason: str


@dataclass(frozen=True, slots=True)
class Action:
    """One ``distill.action.v1`` message: ``api_key_ids`` are page ``page`` of ``pages`` of the
    recommendation's ``member_keys`` keys; ``(action_id, page)`` names the message."""

    action_id: str
    action: str
    incident: str
    dedup_key: str
    version: int
    entity_type: str
    entity_id: str
    api_key_ids: tuple[str, ...]
    member_keys: int
    severity: Severity
    score: float
    reason: str
    ts: str
    page: int = 1
    pages: int = 1

    @classmethod
    def parse(cls, value: bytes | None) -> "Action | BadAction":
        """A message from its bytes on ``distill.actions``, or why they are not one."""
        record = record_of(value)
        return BadAction(record) if isinstance(record, str) else cls.from_dict(record)

    @classmethod
    def from_dict(cls, record: dict) -> "Action | BadAction":
        if record.get("schema") != SCHEMA:
            return BadAction(f"schema is not {SCHEMA}")
        problem = _problem(record)
        if problem:
            return BadAction(problem)
        values = {f.name: record[f.name] for f in fields(cls)}
        return cls(**{**values, "api_key_ids": tuple(record["api_key_ids"]), "severity": Severity(record["severity"]),
                      "score": float(record["score"])})

    def to_dict(self) -> dict:
        """The message in the schema's field order."""
        record = {"schema": SCHEMA}
        for f in fields(self):
            record[f.name] = getattr(self, f.name)
        record["api_key_ids"] = list(self.api_key_ids)
        record["severity"] = self.severity.value
        return record

    def to_bytes(self) -> bytes:
        """The message as sent on ``distill.actions``: compact JSON, UTF-8."""
        return record_bytes(self.to_dict())


_TEXT = ("action_id", "incident", "dedup_key", "entity_id", "ts")
_COUNTS = ("version", "member_keys", "page", "pages")


def _problem(record: dict) -> str | None:
    """What makes ``record`` not an action v1 (None: nothing)."""
    for name in _TEXT:
        if not isinstance(record.get(name), str) or not record[name]:
            return f"field {name!r} missing or not a string"
    for name in _COUNTS:
        value = record.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"field {name!r} missing or not a whole number of 1 or more"
    if record.get("action") not in ACTIONS:
        return f"action {record.get('action')!r} is not one of {ACTIONS}"
    if record.get("entity_type") not in ENTITY_TYPES:
        return f"entity_type {record.get('entity_type')!r} is not one of {ENTITY_TYPES}"
    keys = record.get("api_key_ids")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        return "field 'api_key_ids' is not a list of key ids"
    if not Severity.rank_of(record.get("severity")):
        return f"severity {record.get('severity')!r} is not one of {[s.value for s in Severity]}"
    if not isinstance(record.get("score"), (int, float)) or isinstance(record.get("score"), bool):
        return "field 'score' missing or not a number"
    if not isinstance(record.get("reason"), str):
        return "field 'reason' missing or not a string"
    return None
