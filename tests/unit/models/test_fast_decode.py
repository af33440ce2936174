"""msgspec's fast path of ``parse_event`` gives what the validator alone gives, for every input.

The fast path decodes straight into typed structs and hands to the validator whatever it
refuses; these tests compare ``parse_event(raw)`` with ``parse_event(raw, fast=False)`` on
valid records, records with every field mutated to other JSON values, and arbitrary bytes:
the same RequestEvent, or the same dead-letter reason.
"""
from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.models.events import RequestEvent, parse_event

GOOD = {
    "schema": "llm.request.v1", "event_id": "ev_1", "ts": "2026-02-01T00:00:47.883Z", "api_key_id": "key_1",
    "account_id": "acct_1", "org_id": None, "model": "frontier-3-sonnet", "endpoint": "/v1/messages",
    "prompt": "Think step by step: (A) 4 (B) 5", "system_prompt": None, "conversation_id": "c1",
    "turn_index": 2, "params": {"max_tokens": 8192, "stream": True, "tools": 0, "temperature": 0.7, "top_p": 0.9,
                                "n": 1},
    "usage": {"input_tokens": 15, "output_tokens": 285}, "status": 200, "latency_ms": 5685,
    "client": {"ip": "10.1.2.3", "user_agent": "ua", "asn": 4637, "country": "AU"},
    "account": {"created_at": "2025-03-29T06:43:19Z", "payment_fingerprint": "pf_1", "tier": "free"},
}
PATHS = [(name,) for name in GOOD] + [(outer, inner) for outer in ("params", "usage", "client", "account")
                                      for inner in GOOD[outer]]
_DELETE = object()

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([0, -1, 1, 2**53, 2**53 + 1, 2**63, 2**64, 10**30, 4294967296, 65536]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.0, -0.0, 1.0, 1.5, 1e300]),
    st.text(max_size=140), st.sampled_from(["", "x" * 129, "x" * 128, "é" * 128, "é" * 129, "😀" * 128, "ÄU", "AUS", "\ud800", "\ud83d\ude00", "é",
                                            "2026-02-01T00:00:00Z", "2026-02-01T01:00:00+01:00", "1999-12-31T23:59:59Z",
                                            "2100-01-01T00:00:00Z", "2026-02-01 00:00:00", "llm.request.v1"]))
json_values = st.one_of(json_scalars, st.lists(json_scalars, max_size=3),
                        st.dictionaries(st.sampled_from(["a", "max_tokens", "ip"]), json_scalars, max_size=2))


def same(raw: bytes) -> None:
    fast, slow = parse_event(raw), parse_event(raw, fast=False)
    assert fast == slow, raw[:300]


def test_a_valid_record_is_decoded_alike():
    same(json.dumps(GOOD).encode())
    assert isinstance(parse_event(json.dumps(GOOD).encode()), RequestEvent)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(json_values, st.just(_DELETE))), min_size=1, max_size=4))
def test_records_with_fields_changed_decode_alike(changes):
    doc = copy.deepcopy(GOOD)
    for path, value in changes:
        node = doc
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if value is _DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    same(json.dumps(doc).encode())
    same(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_alike(raw):
    same(raw)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.binary(max_size=8))
def test_a_valid_record_with_bytes_inserted_decodes_alike(at, insert):
    raw = json.dumps(GOOD).encode()
    same(raw[:at] + insert + raw[at:])


def test_what_msgspec_and_json_read_differently_decodes_alike():
    good = json.dumps(GOOD)
    cases = [
        good.replace('"max_tokens": 8192', '"max_tokens": 8192.0'),  # an integral float
        good.replace('"temperature": 0.7', '"temperature": 1e400'),  # past the float range: clamped
        good.replace('"top_p": 0.9', '"top_p": NaN'),
        good.replace('"event_id": "ev_1"', '"event_id": "ev_1", "event_id": "ev_2"'),  # last one wins
        good.replace('"event_id"', '"event\\u005fid"'),  # an escaped field name
        good.replace('"ip": "10.1.2.3"', '"ip": "\\ud800"'),  # a lone surrogate in a claim: repaired
        good.replace('"event_id": "ev_1"', '"event_id": "\\ud800"'),  # ... in an identity field: refused
        good.replace('"params": {', '"params": null, "x": {'),
        good.replace('"turn_index": 2', '"turn_index": null'),
        good.replace('"status": 200', '"status": 99999999999'),  # clamped to its column
        good.replace('"asn": 4637', '"asn": -5'),  # unknown
        good + " ", " " + good, good + "x", good[:-1],
        good.replace('"prompt": "', '"prompt": "' + "[" * 20),  # brackets in a string: the validator reads it
        good.replace('"status": 200', '"status": 200, "deep": ' + "[" * 20 + "]" * 20),
    ]
    for case in cases:
        same(case.encode("utf-8", "surrogatepass"))


def test_account_times_remembered_and_forgotten_give_what_the_validator_gives(monkeypatch):
    from distillguard.models import events
    monkeypatch.setattr(events, "_CREATED_MS_MAX", 2)  # cleared every third new time
    times = ["2025-03-29T06:43:19Z", "2024-01-01T00:00:00.5Z", "2025-03-29T07:43:19+01:00", "not a time"]
    for i in range(12):
        doc = copy.deepcopy(GOOD)
        doc["account"]["created_at"] = times[i * 7 % len(times)]
        raw = json.dumps(doc).encode()
        assert parse_event(raw) == parse_event(raw, fast=False)
    assert len(events._CREATED_MS) <= 2
