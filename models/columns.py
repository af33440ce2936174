"""What fits where a request event's values go: the one table of ``events`` column types.

The validator (:mod:`distillguard.models.events`) checks each field against the column it
is packed into, and the ClickHouse sink builds its arrow schema from the same table, so
the two cannot disagree: a value the validator lets through is a value the sink can store.
``tests/unit/sinks/test_sink_rejects.py`` checks this table against the migrated table.

>>> EVENT_COLUMNS["output_tokens"], column_range("output_tokens")
('UInt32', (0, 4294967295))
>>> column_range("model") is None
True
"""
from __future__ import annotations

# ClickHouse unsigned integer types -> their closed value range.
UINT_RANGES: dict[str, tuple[int, int]] = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**64 - 1),
}
# Integers that only feed the detector's float arithmetic (max_tokens, n, tools, turn_index)
# are clamped here: beyond 2**53 a float no longer holds every integer, and no real request
# comes near it.
MAX_EXACT_INT = 2**53

# The ``events`` feature columns (models.pipeline.ROW_COLUMNS without ``ts_ms``, which is
# the DateTime64 ``ts``) and their ClickHouse types, as created by sinks.migrations.
EVENT_COLUMNS: dict[str, str] = {
    "event_id": "String", "api_key_id": "String", "account_id": "String", "org_id": "String",
    "model": "String", "endpoint": "String", "asn": "UInt32", "country": "String",
    "prompt_chars": "UInt32", "input_tokens": "UInt32", "output_tokens": "UInt32",
    "status": "UInt16", "latency_ms": "UInt32", "score": "Float32", "extraction_style": "Float32",
    "topic_bucket": "UInt16", "template_hash": "UInt64", "alerting": "UInt8",
    "style_share": "Float32", "output_yield": "Float32", "follow_up_share": "Float32",
    "template_repetition": "Float32", "topic_novelty": "Float32", "extraction_evidence": "Float32",
}


def column_range(column: str) -> tuple[int, int] | None:
    """The value range of an integer ``events`` column; ``None`` for other columns."""
    return UINT_RANGES.get(EVENT_COLUMNS[column])
