"""The feedback contract, ``distill.feedback.v1`` (topic ``distill.feedback``), as a type.

On-call's ack, resolve, false positive, snooze and unsnooze of an entity's incident:
:meth:`Feedback.new` makes one (the feedback commands), :meth:`Feedback.to_bytes` is its record
on the topic, :meth:`Feedback.parse` reads one back (the router, the workers' feedback follower)
and says why bytes are not one as :class:`BadFeedback`, data a consumer counts and skips.

>>> fb = Feedback.new("key", "k1", "snooze", actor="al", now=1_770_000_000, until=1_770_003_600)
>>> fb.ts, fb.until
('2026-02-02T02:40:00.000Z', '2026-02-02T03:40:00.000Z')
>>> Feedback.parse(fb.to_bytes()) == fb
True
>>> Feedback.parse(b'{"entity_type":"key","entity_id":"k1","action":"delete","ts":"2026-02-02T02:40:00Z"}')
BadFeedback(reason="unknown feedback action 'delete'")
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from distillguard.errors import DistillguardError
from distillguard.models.events import parse_rfc3339_ms

from .alert import iso_ms
from .wire import record_bytes, record_of

SCHEMA = "distill.feedback.v1"
ACTIONS = ("ack", "resolve", "false_positive", "snooze", "unsnooze")
ENTITY_TYPES = ("key", "account", "cluster")
# What a record keeps of the free text (the ClickHouse columns hold as much).
MAX_REASON, MAX_ACTOR = 2000, 200


class FeedbackError(DistillguardError):
    """A feedback command that cannot make a valid record (raised by :meth:`Feedback.new`)."""


@dataclass(frozen=True, slots=True)
class BadFeedback:
    """Why a record read from the feedback topic is not valid: returned as data by
    :meth:`Feedback.parse`, never raised."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class Feedback:
    """One ``distill.feedback.v1`` record; a snooze alone has an end (``until_ms``)."""

    feedback_id: str
    entity_type: str
    entity_id: str
    action: str
    ts_ms: int
    reason: str = ""
    actor: str = ""
    until_ms: int | None = None

    @classmethod
    def new(cls, entity_type: str, entity_id: str, action: str, *, reason: str = "", actor: str = "",
            now: float | None = None, until: float | None = None) -> "Feedback":
        """A new record (``now`` and ``until`` in epoch seconds); :class:`FeedbackError` if it
        would not be valid."""
        if action not in ACTIONS:
            raise FeedbackError(f"feedback action must be one of {ACTIONS}, not {action!r}")
        if entity_type not in ENTITY_TYPES or not entity_id:
            raise FeedbackError(f"feedback needs an entity type in {ENTITY_TYPES} and an id")
        if (action == "snooze") != (until is not None):
            raise FeedbackError("a snooze needs an end time (until), and only a snooze has one")
        ts_ms = int((time.time() if now is None else now) * 1000)
        return cls(uuid.uuid4().hex, entity_type, entity_id, action, ts_ms, reason[:MAX_REASON], actor[:MAX_ACTOR],
                   None if until is None else int(until * 1000))

    @property
    def ts(self) -> str:
        return iso_ms(self.ts_ms)

    @property
    def until(self) -> str | None:
        return None if self.until_ms is None else iso_ms(self.until_ms)

    @classmethod
    def parse(cls, value: bytes | None) -> "Feedback | BadFeedback":
        """A record from its bytes on the topic, or why they are not one."""
        record = record_of(value)
        return BadFeedback(f"feedback is {record}") if isinstance(record, str) else cls.from_dict(record)

    @classmethod
    def from_dict(cls, record: dict) -> "Feedback | BadFeedback":
        for name in ("entity_type", "entity_id", "action", "ts"):
            if not isinstance(record.get(name), str) or not record[name]:
                return BadFeedback(f"feedback field {name!r} missing or not a string")
        for name in ("feedback_id", "reason", "actor"):  # optional, but text when present
            if not isinstance(record.get(name, ""), str):
                return BadFeedback(f"feedback field {name!r} is not a string")
        if record["action"] not in ACTIONS:
            return BadFeedback(f"unknown feedback action {record['action']!r}")
        if record["entity_type"] not in ENTITY_TYPES:
            return BadFeedback(f"unknown entity type {record['entity_type']!r}")
        try:
            ts_ms = parse_rfc3339_ms(record["ts"])
        except ValueError:
            return BadFeedback("feedback ts is not RFC 3339")
        until_ms = None
        if record["action"] == "snooze":
            try:
                until_ms = parse_rfc3339_ms(record.get("until"))
            except ValueError:
                return BadFeedback("a snooze needs 'until' as RFC 3339")
        feedback_id = record.get("feedback_id") or f"{record['entity_type']}:{record['entity_id']}:{record['ts']}"
        return cls(feedback_id, record["entity_type"], record["entity_id"], record["action"], ts_ms,
                   record.get("reason", "")[:MAX_REASON], record.get("actor", "")[:MAX_ACTOR], until_ms)

    def to_dict(self) -> dict:
        record = {"schema": SCHEMA, "feedback_id": self.feedback_id, "entity_type": self.entity_type,
                  "entity_id": self.entity_id, "action": self.action, "reason": self.reason, "actor": self.actor,
                  "ts": self.ts}
        if self.until_ms is not None:
            record["until"] = self.until
        return record

    def to_bytes(self) -> bytes:
        """The record as sent on ``distill.feedback``: compact JSON, UTF-8."""
        return record_bytes(self.to_dict())
