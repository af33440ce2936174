"""Batch envelopes (llm.request.batch.v1): what the packer writes is what the worker reads back,
and an envelope that cannot be trusted whole is refused with a reason."""
from __future__ import annotations

import json

import pytest

from distillguard.streams.envelope import SCHEMA, EnvelopeError, pack, unpack


def test_records_come_back_byte_for_byte_with_keys_and_offsets():
    records = [(b"k1", b'{"a": 1}', 10), (None, b"\xff\xfe not json", 11), (b"k\xff", None, 15),
               (b"k2", "prompt \u00e9\u4e2d \"quoted\"\n".encode(), 16)]
    envelope = unpack(pack(5, records), partition=5)
    assert [(r.key, r.value, r.partition, r.offset) for r in envelope.records] == [
        (b"k1", b'{"a": 1}', 5, 10), (None, b"\xff\xfe not json", 5, 11), (None, None, 5, 15),
        (b"k2", records[3][1], 5, 16)]
    assert envelope.truncated == {}


def test_an_envelope_is_json_with_the_documented_fields():
    doc = json.loads(pack(2, [(b"k", b"{}", 3)]))
    assert doc["schema"] == SCHEMA and doc["partition"] == 2 and doc["offsets"] == [3] and doc["keys"] == ["k"]


def test_gateway_style_items_are_event_objects():
    value = json.dumps({"schema": SCHEMA, "partition": 0, "offsets": [1, 2],
                        "events": [{"event_id": "e1"}, None]}).encode()
    records = unpack(value, partition=0).records
    assert json.loads(records[0].value) == {"event_id": "e1"} and records[1].value is None


def test_a_record_over_the_item_limit_goes_as_a_prefix_with_its_size():
    envelope = unpack(pack(0, [(b"k", b"x" * 5000, 7), (b"k", b"small", 8)], max_item_bytes=1000), partition=0)
    assert envelope.truncated == {0: 5000}
    assert envelope.records[0].value == b"x" * 1000 and envelope.records[1].value == b"small"


@pytest.mark.parametrize("doc, reason", [
    ({"schema": "llm.request.v1", "partition": 0, "offsets": [], "events": []}, "schema is"),
    ({"schema": SCHEMA, "partition": 1, "offsets": [1], "events": [{}]}, "read from partition 0"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [1, 2], "events": [{}]}, "1 events, 2 offsets"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [4, 4], "events": [{}, {}]}, "not strictly increasing"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [-1], "events": [{}]}, "not strictly increasing"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [2 ** 41], "events": [{}]}, "beyond"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [1], "events": ["not base64!"]}, "not base64"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [1], "events": [{}], "keys": []}, "0 keys"),
    ({"schema": SCHEMA, "partition": 0, "offsets": [1], "events": [{}], "truncated": {"3": 9}}, "not in the envelope"),
    ({"schema": SCHEMA, "partition": 0, "events": [{}]}, "not an envelope"),
])
def test_an_unusable_envelope_is_refused_with_its_reason(doc, reason):
    with pytest.raises(EnvelopeError, match=reason):
        unpack(json.dumps(doc).encode(), partition=0)


@pytest.mark.parametrize("value", [None, b"", b"{oops", b"[]"])
def test_garbage_is_not_an_envelope(value):
    with pytest.raises(EnvelopeError):
        unpack(value, partition=0)


def _unpack_item_by_item(value: bytes, partition: int):
    """The general path alone (every item through ``_item_bytes``): the reference for the fast one."""
    import msgspec

    from distillguard.streams import envelope as env

    try:
        wire = env._decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise EnvelopeError(f"{SCHEMA}: not an envelope: {exc}"[:300]) from None
    env._check(wire, partition)
    keys = wire.keys or [None] * len(wire.events)
    return [(env._item_bytes(raw, i), None if k is None else k.encode(), o)
            for i, (raw, k, o) in enumerate(zip(wire.events, keys, wire.offsets))]


def _outcome(unpacker, value: bytes):
    try:
        return unpacker(value)
    except EnvelopeError as exc:
        return f"refused: {exc}"


def test_the_fast_path_accepts_and_refuses_exactly_as_item_by_item_decoding():
    import base64
    import random

    rng = random.Random(20)
    items = [lambda: base64.b64encode(rng.randbytes(rng.randint(0, 40))).decode(),  # the packer's
             lambda: base64.b64encode(rng.randbytes(rng.randint(1, 8))).decode() + "=",  # excess padding
             lambda: None, lambda: {"event_id": "e"}, lambda: "not base64!", lambda: "YQ", lambda: 7,
             lambda: "".join(rng.choice("AB+/=-_ \n") for _ in range(rng.randint(0, 9)))]
    outcomes = set()
    for _ in range(3000):
        n = rng.randint(0, 6)
        doc = {"schema": SCHEMA if rng.random() > 0.05 else "x", "partition": 0 if rng.random() > 0.05 else 1,
               "offsets": sorted(rng.sample(range(100), n)) if rng.random() > 0.05 else [5] * n,
               "events": [rng.choice(items[:2] if rng.random() < 0.6 else items)() for _ in range(n)]}
        if rng.random() < 0.5:
            doc["keys"] = [rng.choice(["k", None, "\u00e9"]) for _ in range(n)]
        value = json.dumps(doc).encode()
        fast = _outcome(lambda v: [(r.value, r.key, r.offset) for r in unpack(v, partition=0).records], value)
        assert fast == _outcome(lambda v: _unpack_item_by_item(v, 0), value), doc
        outcomes.add(fast if isinstance(fast, str) else "accepted")
    assert "accepted" in outcomes and any("not base64" in o for o in outcomes)  # both ways exercised
