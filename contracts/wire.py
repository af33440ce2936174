"""How every contract record is put on a topic and taken off one: one JSON object, compact, UTF-8.

>>> record_bytes({"schema": "x.v1", "name": "é"})
b'{"schema":"x.v1","name":"\\xc3\\xa9"}'
>>> record_of(b'{"a": 1}'), record_of(b"[1]"), record_of(b"\\xff"), record_of(None)
({'a': 1}, 'not a JSON object', 'not JSON', 'not JSON')
"""
from __future__ import annotations

import json


def record_bytes(record: dict) -> bytes:
    """A record of any contract (alert, feedback, action) as its bytes on its topic."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_of(value: bytes | None) -> dict | str:
    """The JSON object in a message's bytes, or why there is none (a consumer's ``Bad...`` reason)."""
    try:
        record = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return "not JSON"
    return record if isinstance(record, dict) else "not a JSON object"
