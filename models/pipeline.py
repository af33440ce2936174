"""The per-event step shared by the Faust workers and ``distillguard replay``.

``KeyPipeline.step`` takes the key's serialized state (or ``None`` for a new key), one
validated event and its input offset, and returns the new serialized state, the feature
row for ClickHouse (never the prompt text) and, when the key's incident opens or
escalates, one alert v1 dict. It is deterministic and does no I/O, so replaying a file and
streaming it through Kafka give the same alerts.
"""
from __future__ import annotations

from dataclasses import dataclass

from .events import RequestEvent


@dataclass(slots=True)
class StepResult:
    state: bytes
    row: dict | None
    alert: dict | None
    duplicate: bool = False


# The feature row written to ClickHouse for every processed event (sinks.clickhouse owns the
# table; a new column here needs a migration there). No prompt text, by construction.
ROW_COLUMNS: tuple[str, ...] = (
    "event_id",        # str
    "ts_ms",           # int, event time, epoch ms
    "api_key_id",      # str
    "account_id",      # str
    "org_id",          # str ('' when unknown)
    "model",           # str
    "endpoint",        # str ('' when unknown)
    "asn",             # int (0 when unknown)
    "country",         # str ('' when unknown)
    "prompt_chars",    # int
    "input_tokens",    # int (0 when unknown)
    "output_tokens",   # int (0 when unknown)
    "status",          # int (0 when unknown)
    "latency_ms",      # int (0 when unknown)
    "score",           # float, the key's detector score after this event
    "extraction_style",  # float in [0, 1], how much this prompt reads like extraction
    "topic_bucket",    # int in [0, 255], coarse topic of the prompt sketch
    "template_hash",   # int, uint64 fingerprint of the masked prompt template
    "alerting",        # int 0/1, key has an open incident
)
