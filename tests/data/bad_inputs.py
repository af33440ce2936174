"""The bad-input corpus: records a gateway (or an attacker) could put on ``llm.requests``.

``CORPUS`` maps a case name to ``(raw bytes, expected reason class)``; the reason class is
what the worker puts in the ``reason`` label of ``distillguard_dead_letters_total`` and in the
``reason_class`` column of ClickHouse's ``dlq`` table: the dead-letter reason up to its first
colon. Used by ``tests/unit/models/test_bad_inputs.py`` (through ``parse_event``) and
``tests/integration/test_bad_inputs.py`` (through the broker and a running worker).

Not here, because they are not dead-lettered: a duplicate event id is deduplicated by the
key's detector (counted as a duplicate, stored once); an event a few days ahead of the
worker's clock is dead-lettered by the worker, not by ``parse_event`` (``future_event``);
an integer past its ClickHouse column or past 2**53 (``usage.input_tokens`` = 2**64) is
clamped and counted, and a lone surrogate in a client claim such as ``model`` is replaced
(``tests/unit/models/test_events.py``).
"""
from __future__ import annotations

import json
import time

GOOD = {
    "schema": "llm.request.v1", "event_id": "ev_good", "ts": "2026-02-01T00:00:47.883Z", "api_key_id": "key_bad",
    "account_id": "acct_1", "model": "frontier-3-sonnet", "endpoint": "/v1/messages",
    "prompt": "Explain how tides work.", "turn_index": 0,
    "params": {"max_tokens": 1024, "stream": False, "temperature": 0.7, "top_p": 0.9, "n": 1},
    "usage": {"input_tokens": 15, "output_tokens": 285}, "status": 200, "latency_ms": 812,
    "client": {"ip": "10.1.2.3", "user_agent": "ua", "asn": 4637, "country": "AU"},
    "account": {"created_at": "2025-03-29T06:43:19Z", "payment_fingerprint": "pf_1", "tier": "free"},
}


def good(**over) -> dict:
    doc = json.loads(json.dumps(GOOD))
    for name, value in over.items():
        if "." in name:
            outer, inner = name.split(".", 1)
            doc[outer][inner] = value
        elif value is _DELETE:
            del doc[name]
        else:
            doc[name] = value
    return doc


_DELETE = object()


def enc(doc) -> bytes:
    return json.dumps(doc).encode()


def _nested(depth: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(depth):
        node = {"n": node}
    return node


_valid = enc(GOOD)

CORPUS: dict[str, tuple[bytes, str]] = {
    # malformed JSON
    "not json": (b"{not json", "not JSON"),
    "empty bytes": (b"", "not JSON"),
    "truncated record": (_valid[: len(_valid) // 2], "not JSON"),
    "trailing garbage": (_valid + b"}", "not JSON"),
    "utf-8 bom": (b"\xef\xbb\xbf" + _valid, "not JSON"),
    "two documents": (_valid + b"\n" + _valid, "not JSON"),
    # not a JSON object
    "json array": (enc([GOOD]), "expected a JSON object, got list"),
    "json string": (b'"hello"', "expected a JSON object, got str"),
    "json null": (b"null", "expected a JSON object, got NoneType"),
    # encoding
    "invalid utf-8": (b'{"prompt": "\xff\xfe"}', "not valid UTF-8"),
    "latin-1 prompt": (_valid.replace(b"tides", "mar\u00e9es".encode("latin-1")), "not valid UTF-8"),
    # a lone surrogate escape: legal JSON, not encodable as UTF-8, in an identity field
    "lone surrogate in api_key_id": (enc(good(api_key_id="key-\ud800")), "api_key_id"),
    "lone surrogate in event_id": (enc(good(event_id="\udfffev")), "event_id"),
    "lone surrogate in account_id": (enc(good(account_id="acct-\ud83d")), "account_id"),
    # missing fields
    "missing event_id": (enc(good(event_id=_DELETE)), "missing required field"),
    "missing prompt": (enc(good(prompt=_DELETE)), "missing required field"),
    "missing api_key_id": (enc(good(api_key_id=_DELETE)), "missing required field"),
    "missing schema": (enc(good(schema=_DELETE)), "missing required field"),
    "empty object": (b"{}", "missing required field"),
    # wrong types
    "null api_key_id": (enc(good(api_key_id=None)), "api_key_id"),
    "prompt is a number": (enc(good(prompt=42)), "prompt"),
    "prompt is a list": (enc(good(prompt=["a", "b"])), "prompt"),
    "event_id is an object": (enc(good(event_id={"id": 1})), "event_id"),
    "ts is a number": (enc(good(ts=1769904047883)), "ts"),
    "turn_index is a bool": (enc(good(turn_index=True)), "turn_index"),
    "max_tokens is a string": (enc(good(**{"params.max_tokens": "100"})), "params.max_tokens"),
    "stream is a string": (enc(good(**{"params.stream": "yes"})), "params.stream"),
    "params is a list": (enc(good(params=[1, 2])), "params"),
    "asn is a float": (enc(good(**{"client.asn": 4637.5})), "client.asn"),
    "negative output tokens": (enc(good(**{"usage.output_tokens": -1})), "usage.output_tokens"),
    "top_p above 1": (enc(good(**{"params.top_p": 1.5})), "params.top_p"),
    "empty event_id": (enc(good(event_id="")), "event_id"),
    "api key too long": (enc(good(api_key_id="k" * 129)), "api_key_id"),
    "country too long": (enc(good(**{"client.country": "AUS"})), "client.country"),
    # NaN / inf (not JSON, though Python's json accepts them)
    "NaN temperature": (_valid.replace(b'"temperature": 0.7', b'"temperature": NaN'), "non-standard JSON number"),
    "Infinity top_p": (_valid.replace(b'"top_p": 0.9', b'"top_p": Infinity'), "non-standard JSON number"),
    "-Infinity latency": (_valid.replace(b'"latency_ms": 812', b'"latency_ms": -Infinity'),
                          "non-standard JSON number"),
    # JSON allows 1e400; it decodes to inf, past top_p's maximum of 1 (a temperature of 1e400
    # is a valid claim: clamped to the largest float, see tests/unit/models/test_events.py)
    "overflowing float": (_valid.replace(b'"top_p": 0.9', b'"top_p": 1e400'), "params.top_p"),
    # size and depth
    "10 MB prompt": (enc(good(prompt="y" * 10_000_000)), "record too large"),
    "deeply nested arrays": (b"[" * 100_000 + b"]" * 100_000, "JSON nested deeper than 16 levels"),
    "deeply nested field": (enc(good(extra=_nested(40))), "JSON nested deeper than 16 levels"),
    "deeply nested unclosed": (b'{"a":' * 5000, "JSON nested deeper than 16 levels"),
    # timestamps
    "ts far future": (enc(good(ts="2999-01-01T00:00:00Z")), "ts"),
    "ts far past": (enc(good(ts="1970-01-01T00:00:00Z")), "ts"),
    "ts year 9999": (enc(good(ts="9999-12-31T23:59:59Z")), "ts"),
    "ts without zone": (enc(good(ts="2026-02-01T00:00:00")), "ts"),
    "ts not a date": (enc(good(ts="yesterday")), "ts"),
    "ts month 13": (enc(good(ts="2026-13-01T00:00:00Z")), "ts"),
    # schema version
    "schema v2": (enc(good(schema="llm.request.v2")), "unsupported schema"),
    "schema v0": (enc(good(schema="llm.request.v0")), "unsupported schema"),
    "schema is a number": (enc(good(schema=1)), "unsupported schema"),
}


def future_event(event_id: str = "ev_future", days_ahead: float = 3.0) -> bytes:
    """A well-formed event ``days_ahead`` past the worker's clock (limit ``DG_MAX_FUTURE_S``, 1 day)."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days_ahead * 86400))
    return enc(good(event_id=event_id, ts=ts))
