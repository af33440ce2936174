"""A record with any field at any value is stored or dead-lettered, and the next one is stored.

Hypothesis drives every field of the request event (top level and nested, whole objects too)
with extreme and malformed values through the worker's own path: decode -> processor.step ->
a real embedded ClickHouse sink -> flush. Before the column checks and the sink's isolation,
one value that did not fit its column (output_tokens = 5e9, a lone surrogate) failed every
flush after it (issue #17, finding 1).
"""
from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillguard.models.clusters import ClusterDetector, link_batch_bytes, link_record, link_value_key
from distillguard.models.pipeline import KeyPipeline
from distillguard.sinks.clickhouse import ClickHouseSink
from distillguard.contracts.alert import alert_bytes
from distillguard.models.step import DeadLetter, RequestProcessor

TOPIC = "llm.requests"
GOOD = {
    "schema": "llm.request.v1", "event_id": "ev", "ts": "2026-11-20T10:00:00Z", "api_key_id": "key",
    "account_id": "acct", "org_id": "org", "model": "frontier-3-sonnet", "endpoint": "/v1/messages",
    "prompt": "Explain how tides work.", "system_prompt": "be brief", "conversation_id": "c1", "turn_index": 0,
    "params": {"max_tokens": 1024, "stream": False, "temperature": 0.7, "top_p": 0.9, "n": 1, "tools": 0},
    "usage": {"input_tokens": 15, "output_tokens": 285}, "status": 200, "latency_ms": 812,
    "client": {"ip": "10.1.2.3", "user_agent": "ua", "asn": 4637, "country": "AU"},
    "account": {"created_at": "2025-03-29T06:43:19Z", "payment_fingerprint": "pf_1", "tier": "free"},
}
FIELDS = sorted([name for name in GOOD] + [f"{outer}.{inner}" for outer, obj in GOOD.items()
                                          if isinstance(obj, dict) for inner in obj])

# Extreme and malformed values: integers past every column (and past 2**64), negative, floats
# with and without a fraction, NaN and infinities, strings with lone surrogates, control
# characters and astral characters, long strings, wrong types, nested junk.
huge_ints = st.sampled_from([-2**63, -1, 0, 2**8, 2**16, 2**31, 2**32 - 1, 2**32, 2**53, 2**53 + 1, 2**63,
                             2**64, 10**30]) | st.integers()
floats = st.sampled_from([5e9, 1e300, -0.0, 0.5, 1e-300, 4294967296.0]) | st.floats(allow_nan=True)
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
strings = any_text | st.sampled_from(["\ud800", "k\udfff", "\U0001F600", "\x00", "", " ", "x" * 129,
                                      "y" * 5000, "2026-11-20T10:00:00Z", "2001-01-01T00:00:00Z",
                                      "1970-01-01T00:00:00Z", "2099-12-31T23:59:59Z"])
junk = st.recursive(st.none() | st.booleans() | huge_ints | floats | strings,
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(strings, children,
                                                                                       max_size=3),
                    max_leaves=8)
VALUES = st.none() | st.booleans() | huge_ints | floats | strings | junk


def record(changes: dict, serial: int) -> bytes:
    doc = json.loads(json.dumps(GOOD))
    # Each record its own key and event id, unless the example sets them: a fresh key state.
    doc["event_id"], doc["api_key_id"] = f"ev-{serial}", f"key-{serial}"
    for path, value in changes.items():
        outer, _, inner = path.partition(".")
        if inner and isinstance(doc.get(outer), dict):
            doc[outer][inner] = value
        elif not inner:
            doc[outer] = value
    # allow_nan: NaN/Infinity go out as the non-standard tokens a producer could send.
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def worker_step(processor, states, sink, raw: bytes, offset: int) -> str:
    """What the worker does with one record (streams/app.py handle): its outcome. Raises if
    anything the worker sends on (alert, link record, link value key) cannot be encoded."""
    decoded = processor.decode(raw, None, 0, offset)
    if isinstance(decoded, DeadLetter):
        sink.add_dead_letter(decoded.reason, TOPIC, 0, offset, decoded.size)
        return "dead-lettered"
    key = decoded.api_key_id.encode("utf-8", "surrogatepass")
    result = processor.step(states.get(key), decoded, offset)
    if result.duplicate:
        return "duplicate"
    sink.add(result.row, 0, offset, TOPIC)
    if result.alert is not None:
        alert_bytes(result.alert)  # what goes on the alerts topic
        sink.add_alert(result.alert)
    rec = link_record(decoded, result, partition=0, offset=offset)
    if rec is not None:  # what goes to the cluster detector and the link-values topic
        link_batch_bytes([rec.to_bytes()])
        for kind, link_value in ClusterDetector().values_to_link(rec):
            link_value_key(kind, link_value)
    states[key] = result.state
    return "stored"


def test_any_field_at_any_value_is_stored_or_dead_lettered_and_the_next_record_is_stored(chdb_client,
                                                                                          chdb_settings):
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    processor = RequestProcessor(KeyPipeline(), source_topic=TOPIC)
    states: dict[bytes, bytes] = {}
    offsets = itertools.count()
    db = chdb_settings.database

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(st.sampled_from(FIELDS), VALUES, min_size=1, max_size=3))
    def one_record_then_a_normal_one(changes):
        poison_at, normal_at = next(offsets), next(offsets)
        outcome = worker_step(processor, states, sink, record(changes, poison_at), poison_at)
        assert worker_step(processor, states, sink, record({}, normal_at), normal_at) == "stored"
        sink.flush()  # never raises: nothing here makes ClickHouse unavailable
        stored = {r[0] for r in chdb_client.query(
            f"SELECT kafka_offset FROM {db}.events WHERE kafka_offset IN ({poison_at}, {normal_at})").result_rows}
        dead = {r[0] for r in chdb_client.query(
            f"SELECT offset FROM {db}.dlq WHERE offset = {poison_at}").result_rows}
        assert normal_at in stored, changes
        if outcome == "duplicate":  # an event id this key has seen: deduplicated, by design
            assert "event_id" in changes and poison_at not in stored | dead
        else:
            assert (poison_at in stored) != (poison_at in dead), (changes, outcome)

    one_record_then_a_normal_one()


EXTREMES = [None, True, -1, 0.5, -2**63, 2**32, 2**53 + 1, 2**64, 5e9, 1e300, float("nan"), float("inf"), "",
            "\ud800", "k\udfff", "\U0001F600", "\x00", "x" * 5000, "2001-01-01T00:00:00Z", [1, {"a": []}],
            {"nested": {"deep": [None]}}]


def test_every_field_at_each_extreme_value_in_one_batch(chdb_client, chdb_settings):
    """Every field x every extreme value, all in one flush: the batch holds many rows ClickHouse
    would refuse among good ones, and the worker's outcome is decided for each record."""
    sink = ClickHouseSink(chdb_settings, client=chdb_client)
    processor = RequestProcessor(KeyPipeline(), source_topic=TOPIC)
    states: dict[bytes, bytes] = {}
    outcomes, normal = {}, []
    offsets = itertools.count()
    for path in FIELDS:
        for value in EXTREMES:
            at = next(offsets)
            outcomes[at] = (path, value, worker_step(processor, states, sink, record({path: value}, at), at))
            normal.append(next(offsets))
            assert worker_step(processor, states, sink, record({}, normal[-1]), normal[-1]) == "stored"
    sink.flush()
    db = chdb_settings.database
    stored = {r[0] for r in chdb_client.query(f"SELECT kafka_offset FROM {db}.events").result_rows}
    dead = {r[0] for r in chdb_client.query(f"SELECT offset FROM {db}.dlq").result_rows}
    assert set(normal) <= stored
    for at, (path, value, outcome) in outcomes.items():
        assert outcome != "duplicate" and (at in stored) != (at in dead), (path, value, outcome)
    # What was stored is what fits: clamped values at their column's bound, never wrapped.
    assert chdb_client.query(f"SELECT max(output_tokens), max(latency_ms) FROM {db}.events").result_rows == \
        [(2**32 - 1, 2**32 - 1)]
