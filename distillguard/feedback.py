"""The feedback commands (``ack``, ``resolve``, ``false-positive``, ``snooze``, ``unsnooze``):
their settings and how they send a record to ``distill.feedback``.

The record is :class:`~distillguard.contracts.feedback.Feedback` (``distill.feedback.v1``), keyed
by ``entity_id`` with Kafka's murmur2 partitioner (the one Faust uses for ``distill.alerts``), so
a feedback record lands on the partition whose router owns the entity's incident. The router
applies ack / resolve to incidents and snooze / unsnooze as Alertmanager silences; the detector
workers read every partition to suppress entities marked false positive; feedback is stored in
ClickHouse.
"""
from __future__ import annotations

from pydantic import AliasChoices, Field

from .contracts.feedback import ENTITY_TYPES, MAX_ACTOR, Feedback
from .errors import DistillguardError
from .streams.settings import KafkaSettings


class FeedbackCommandSettings(KafkaSettings):
    """The feedback commands' settings (env prefix ``DG_``); Kafka from :class:`KafkaSettings`."""

    # Who the records say acted, when the command has no --actor (unset: the login name).
    actor: str | None = Field(None, validation_alias=AliasChoices("DG_ACTOR"), max_length=MAX_ACTOR)
    # Where the records go (the worker's and the router's DG_FEEDBACK_TOPIC); --topic overrides.
    feedback_topic: str = Field("distill.feedback", validation_alias=AliasChoices("DG_FEEDBACK_TOPIC"))


def split_entity(entity: str, default_type: str = "key") -> tuple[str, str]:
    """``cluster:abc`` -> (cluster, abc); a bare ``abc`` is an entity of ``default_type``."""
    prefix, sep, rest = entity.partition(":")
    if sep and prefix in ENTITY_TYPES and rest:
        return prefix, rest
    return default_type, entity


def produce_feedback(config: dict, topic: str, feedback: Feedback, timeout: float = 30.0) -> None:
    """Send one record; ``config`` is librdkafka's (``KafkaSettings.confluent_config()``)."""
    from confluent_kafka import Producer

    # murmur2: the partitioner Faust (aiokafka) uses for the alerts the router consumes.
    producer = Producer({**config, "partitioner": "murmur2_random", "enable.idempotence": True})
    producer.produce(topic, key=feedback.entity_id.encode(), value=feedback.to_bytes())
    if producer.flush(timeout) != 0:
        raise DistillguardError(f"feedback not delivered to {topic} within {timeout:.0f}s")
