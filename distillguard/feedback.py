"""Feedback from on-call (topic ``distill.feedback``): ack, resolve, false positive, snooze, unsnooze.

A record is one JSON object ``{schema, feedback_id, entity_type, entity_id, action, reason,
actor, ts}`` (a snooze adds ``until``, RFC 3339), keyed by ``entity_id`` with Kafka's murmur2
partitioner (the one Faust uses for ``distill.alerts``), so a feedback record lands on the
partition whose router owns the entity's incident. The router applies ack / resolve to
incidents and snooze / unsnooze as Alertmanager silences; the detector workers read every
partition to suppress entities marked false positive; feedback is stored in ClickHouse.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import AliasChoices, Field

from .contracts.alert import iso_time
from .errors import DistillguardError
from .streams.settings import KafkaSettings

SCHEMA = "distill.feedback.v1"
ACTIONS = ("ack", "resolve", "false_positive", "snooze", "unsnooze")
ENTITY_TYPES = ("key", "account", "cluster")


class FeedbackCommandSettings(KafkaSettings):
    """The feedback commands' settings (``ack``, ``resolve``, ``false-positive``, ``snooze``,
    ``unsnooze``; env prefix ``DG_``); Kafka from :class:`KafkaSettings`."""

    # Who the records say acted, when the command has no --actor (unset: the login name).
    actor: str = Field("", validation_alias=AliasChoices("DG_ACTOR"), max_length=200)
    # Where the records go (the worker's and the router's DG_FEEDBACK_TOPIC); --topic overrides.
    feedback_topic: str = Field("distill.feedback", validation_alias=AliasChoices("DG_FEEDBACK_TOPIC"))


class FeedbackError(DistillguardError):
    """A feedback command that cannot make a valid record (raised by :func:`feedback_record`)."""


@dataclass(frozen=True, slots=True)
class BadFeedback:
    """Why a feedback record read from the topic is not valid: returned as data by
    :func:`parse_feedback` (errors are data: a consumer counts and skips it), never raised."""

    reason: str

    def __str__(self) -> str:
        return self.reason


def split_entity(entity: str, default_type: str = "key") -> tuple[str, str]:
    """``cluster:abc`` -> (cluster, abc); a bare ``abc`` is an entity of ``default_type``."""
    prefix, sep, rest = entity.partition(":")
    if sep and prefix in ENTITY_TYPES and rest:
        return prefix, rest
    return default_type, entity


def feedback_record(entity_type: str, entity_id: str, action: str, *, reason: str = "", actor: str = "",
                    now: float | None = None, until: float | None = None) -> dict:
    if action not in ACTIONS:
        raise FeedbackError(f"feedback action must be one of {ACTIONS}, not {action!r}")
    if entity_type not in ENTITY_TYPES or not entity_id:
        raise FeedbackError(f"feedback needs an entity type in {ENTITY_TYPES} and an id")
    if (action == "snooze") != (until is not None):
        raise FeedbackError("a snooze needs an end time (until), and only a snooze has one")
    ts = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    extra = {"until": _iso(until)} if until is not None else {}
    return {**extra, "schema": SCHEMA, "feedback_id": uuid.uuid4().hex, "entity_type": entity_type,
            "entity_id": entity_id,
            "action": action, "reason": reason[:2000], "actor": actor[:200],
            "ts": _iso(ts.timestamp())}


def _iso(seconds: float) -> str:
    return iso_time(datetime.fromtimestamp(seconds, tz=timezone.utc))


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def parse_feedback(value: bytes | None) -> dict | BadFeedback:
    """A validated feedback dict, or the reason it is not one (errors are data)."""
    try:
        record = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return BadFeedback("feedback is not JSON")
    if not isinstance(record, dict):
        return BadFeedback("feedback is not a JSON object")
    for name in ("entity_type", "entity_id", "action", "ts"):
        if not isinstance(record.get(name), str) or not record[name]:
            return BadFeedback(f"feedback field {name!r} missing or not a string")
    if record["action"] not in ACTIONS:
        return BadFeedback(f"unknown feedback action {record['action']!r}")
    if record["entity_type"] not in ENTITY_TYPES:
        return BadFeedback(f"unknown entity type {record['entity_type']!r}")
    try:
        record["ts_ms"] = _ms(record["ts"])
    except ValueError:
        return BadFeedback("feedback ts is not RFC 3339")
    if record["action"] == "snooze":
        try:
            record["until_ms"] = _ms(str(record.get("until", "")))
        except ValueError:
            return BadFeedback("a snooze needs 'until' as RFC 3339")
    record.setdefault("feedback_id", f"{record['entity_type']}:{record['entity_id']}:{record['ts']}")
    record.setdefault("reason", "")
    record.setdefault("actor", "")
    return record


def produce_feedback(config: dict, topic: str, record: dict, timeout: float = 30.0) -> None:
    """Send one record; ``config`` is librdkafka's (``WorkerSettings.confluent_config()``)."""
    from confluent_kafka import Producer

    # murmur2: the partitioner Faust (aiokafka) uses for the alerts the router consumes.
    producer = Producer({**config, "partitioner": "murmur2_random", "enable.idempotence": True})
    producer.produce(topic, key=record["entity_id"].encode(), value=json.dumps(record).encode())
    if producer.flush(timeout) != 0:
        raise DistillguardError(f"feedback not delivered to {topic} within {timeout:.0f}s")
