"""Batch envelopes, ``llm.request.batch.v1``: many input records of one partition in one Kafka message.

Faust spends 220-300 us of CPU on every message before an agent sees it (issue #20); an
envelope of 500 records pays that once. ``distillguard packer`` (streams/packer.py) writes
them: it reads ``llm.requests`` and packs each partition's records, in offset order, into
envelopes on the packed topic, partition p to partition p (so the worker's state table stays
co-partitioned with its input). Wire format (docs/contracts.md,
contracts/request-batch.v1.schema.json)::

    {"schema": "llm.request.batch.v1", "partition": 3,
     "offsets": [1200, 1201],               # each record's offset in its source partition
     "keys": ["key-a", null],               # each record's Kafka key (UTF-8), null: none
     "events": ["eyJzY2hlbWEiOi...", {...}], # each record: base64 of its bytes, or the event object
     "truncated": {"1": 2400000}}           # optional: item index -> original size (cut to a prefix)

The Kafka key of an envelope is its source partition number in ASCII (``b"3"``); it is produced
to that partition explicitly. The offsets are what the worker positions each record at (its
rows, key state and dead letters carry the source offset, exactly as when it reads
``llm.requests`` directly), so they are trusted only on the packed topic, which only the
packer writes.

>>> value = pack(3, [(b"k1", b'{"schema":"llm.request.v1"}', 7), (None, b"{oops", 8)])
>>> envelope = unpack(value, partition=3)
>>> [(r.key, r.value, r.offset) for r in envelope.records]
[(b'k1', b'{"schema":"llm.request.v1"}', 7), (None, b'{oops', 8)]
>>> try:
...     unpack(b'{"schema":"llm.request.batch.v1","partition":3,"offsets":[2,1],"events":[{},{}]}', partition=3)
... except EnvelopeError as exc:
...     print(exc)
llm.request.batch.v1: offsets not strictly increasing at item 1
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import msgspec

from distillguard.errors import DistillguardError
from distillguard.models.positions import MAX_OFFSET
from distillguard.models.step import Record

SCHEMA = "llm.request.batch.v1"


class EnvelopeError(DistillguardError):
    """A message of the packed topic that is not a usable envelope: dead-lettered whole, with this reason."""


class _Wire(msgspec.Struct):
    schema: str
    partition: int
    offsets: list[int]
    events: list[msgspec.Raw]
    keys: list[str | None] | None = None
    truncated: dict[str, int] = {}


class _PackedWire(msgspec.Struct):
    """The packer's envelopes: every item base64 (decoded by msgspec in C) or null."""

    schema: str
    partition: int
    offsets: list[int]
    events: list[bytes | None]
    keys: list[str | None] | None = None
    truncated: dict[str, int] = {}


_decoder = msgspec.json.Decoder(_Wire)
_packed_decoder = msgspec.json.Decoder(_PackedWire)
_keys_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Envelope:
    """An unpacked envelope: its records in offset order, and the cut ones (index -> original size)."""

    partition: int
    records: list[Record]
    truncated: dict[int, int] = field(default_factory=dict)


def pack(partition: int, records: list[tuple[bytes | None, bytes | None, int]], max_item_bytes: int | None = None
         ) -> bytes:
    """One envelope of ``records`` (key, value, source offset), in offset order. Values go as
    base64 without being parsed (bad input reaches the worker byte for byte, to be dead-lettered
    there); one over ``max_item_bytes`` goes as its prefix, with its size in ``truncated``."""
    keys, items, offsets, truncated = [], [], [], {}
    for index, (key, value, offset) in enumerate(records):
        keys.append(_key_text(key))
        offsets.append(str(offset).encode())
        if value is None:
            items.append(b"null")
            continue
        if max_item_bytes is not None and len(value) > max_item_bytes:
            truncated[str(index)] = len(value)
            value = value[:max_item_bytes]
        items.append(b'"' + base64.b64encode(value) + b'"')
    head = b'{"schema":"%s","partition":%d,"offsets":[%s],"keys":%s,' % (
        SCHEMA.encode(), partition, b",".join(offsets), _keys_encoder.encode(keys))
    tail = b',"truncated":%s}' % _keys_encoder.encode(truncated) if truncated else b"}"
    return head + b'"events":[' + b",".join(items) + b"]" + tail


def key_bytes(key: bytes | None) -> int:
    """What ``key`` takes in an envelope's ``keys`` (JSON-escaped): what the packer counts against its size."""
    return len(_keys_encoder.encode(_key_text(key)))


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None  # a key that is not text: the record is still processed (by its api_key_id)


def unpack(value: bytes | None, *, partition: int) -> Envelope:
    """The records of an envelope read from ``partition``; :class:`EnvelopeError` says why it is unusable."""
    if value is None:
        raise EnvelopeError(f"{SCHEMA}: empty message (no value)")
    try:
        # The packer's envelope in one C pass (its base64 items decoded by msgspec: ~1 us a
        # record against ~4.5 for the items one by one). msgspec refuses some base64 that
        # b64decode accepts (excess padding) and every event object: the general path below
        # takes those, so both paths accept and refuse alike (test_envelope).
        wire = _packed_decoder.decode(value)
        items = wire.events
    except msgspec.DecodeError:
        try:
            wire = _decoder.decode(value)
        except msgspec.DecodeError as exc:
            raise EnvelopeError(f"{SCHEMA}: not an envelope: {exc}"[:300]) from None
        items = None
    _check(wire, partition)
    if items is None:
        items = [_item_bytes(raw, index) for index, raw in enumerate(wire.events)]
    keys = wire.keys or [None] * len(items)
    records = [Record(item, None if key is None else key.encode("utf-8"), partition, offset)
               for item, key, offset in zip(items, keys, wire.offsets)]
    return Envelope(partition, records, {int(index): size for index, size in wire.truncated.items()})


def _check(wire: _Wire, partition: int) -> None:
    if wire.schema != SCHEMA:
        raise EnvelopeError(f"{SCHEMA}: schema is {wire.schema[:60]!r}")
    if wire.partition != partition:
        raise EnvelopeError(f"{SCHEMA}: packed from partition {wire.partition}, read from partition {partition}")
    if len(wire.offsets) != len(wire.events) or (wire.keys is not None and len(wire.keys) != len(wire.events)):
        raise EnvelopeError(f"{SCHEMA}: {len(wire.events)} events, {len(wire.offsets)} offsets"
                            f"{'' if wire.keys is None else f', {len(wire.keys)} keys'}")
    previous = -1
    for index, offset in enumerate(wire.offsets):
        if offset <= previous:
            raise EnvelopeError(f"{SCHEMA}: offsets not strictly increasing at item {index}")
        previous = offset
    if previous > MAX_OFFSET:
        raise EnvelopeError(f"{SCHEMA}: offset {previous} beyond {MAX_OFFSET}")
    for index in wire.truncated:
        if not index.isdigit() or int(index) >= len(wire.events):
            raise EnvelopeError(f"{SCHEMA}: truncated names item {index[:20]!r}, not in the envelope")


def _item_bytes(raw: msgspec.Raw, index: int) -> bytes | None:
    """An item's record: base64 in a JSON string (the packer's way), else the JSON value itself."""
    data = bytes(raw)
    if data[:1] == b'"':
        try:
            return base64.b64decode(data[1:-1], validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError(f"{SCHEMA}: item {index} is a string but not base64") from None
    return None if data == b"null" else data
