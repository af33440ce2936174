"""The link record's wire form (contracts/link_record.py): round trips, older and newer writers."""
from __future__ import annotations

import dataclasses
import json

from distillguard.contracts.link_record import LinkRecord

T0 = 1_769_904_000_000


def rec(key: str, i: int, **fields) -> LinkRecord:
    return LinkRecord(key, f"acct-{key}", T0 + i * 60_000, 1.0, hash((key, i, "h")) & 0xFFFF_FFFF,
                      hash((key, i, "t")) & 0xFFFF_FFFF, **fields)


def test_link_record_round_trips_as_bytes():
    r = rec("k", 3, payment_fingerprint="pf", net="1.2.3.0/24", asn=7, ua_hash=9)
    assert LinkRecord.from_bytes(r.to_bytes()) == r


def test_link_records_round_trip_with_their_source():
    r = dataclasses.replace(rec("k", 1, payment_fingerprint="p"), source_partition=3, source_offset=41, topic_bucket=200)
    assert LinkRecord.from_bytes(r.to_bytes()) == r
    fields = json.loads(r.to_bytes())
    assert fields[12:15] == [3, 41, 200]
    old = json.dumps(fields[:12]).encode()  # a record sent before the source fields existed
    assert LinkRecord.from_bytes(old).source_offset == -1 and LinkRecord.from_bytes(old).topic_bucket == -1
    assert LinkRecord.from_bytes(old).key_events == -1
    newer = r.to_bytes()[:-1] + b',"a field of a later version"]'  # read by an older agent: ignored
    assert LinkRecord.from_bytes(newer) == r




def test_the_wire_form_is_the_compact_json_any_reader_parses_to_the_same_fields():
    records = [rec("k\u00e9\u4e2d", 1, payment_fingerprint="pf\"x", net="2001:db8::/48", asn=4_294_967_295,
                   ua_hash=2 ** 63 - 1, output_tokens=0, account_created_ms=T0),
               dataclasses.replace(rec("k", 2), style=1e-05, simhash=2 ** 64 - 1, item=0, family=255, key_events=10 ** 9),
               dataclasses.replace(rec("k", 3), style=0.30000000000000004, head=0, tail=-1)]
    for r in records:
        wire = r.to_bytes()
        fields = [getattr(r, f.name) for f in dataclasses.fields(LinkRecord)]
        assert json.loads(wire) == fields and b" " not in wire.replace(b"/48", b"")
        assert LinkRecord.from_fields(json.loads(wire)) == r == LinkRecord.from_bytes(wire)
        if r.api_key_id.isascii() and r.payment_fingerprint is None:  # (json escaped non-ASCII text)
            assert json.dumps(fields, separators=(",", ":")).encode().replace(b"1e-05", b"0.00001") == wire


def test_a_lone_surrogate_still_makes_a_record():
    r = rec("k\udc80", 1)
    assert LinkRecord.from_bytes(r.to_bytes()) == r
