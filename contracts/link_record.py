"""The link record: what the cluster detector needs of one event, as it crosses the links topic.

The workers send link records to the cluster agent on the internal links topic (one
partition: linking is global); ``distillguard replay`` hands them over in process. No prompt
text: ids, a few hashes and counts. On the wire a record is a compact JSON array of its
fields in declaration order (:meth:`LinkRecord.to_bytes`); a links-topic message is a JSON
array of such arrays (:func:`link_batch_bytes`), or, as sent before batching, one record.

Versioning: fields are only ever appended. A reader takes the fields it knows and defaults
the ones an older writer left out (:meth:`LinkRecord.from_fields`), so workers and the
cluster agent can be upgraded in any order.

>>> one = LinkRecord("k1", "a1", 1_769_904_000_000, 1.0, 2, 3, payment_fingerprint="pf")
>>> one.to_bytes()[:40]
b'["k1","a1",1769904000000,1.0,2,3,"pf",nu'
>>> link_records_in(link_batch_bytes([one.to_bytes(), one.to_bytes()])) == [one, one]
True
>>> link_records_in(one.to_bytes()) == [one]
True
>>> LinkRecord.from_fields(["k1", "a1", 5, 0.0, 2, 3]).output_tokens  # an older writer's record
-1
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import msgspec

# msgspec writes the compact JSON json.dumps(separators=(",", ":")) wrote, in a quarter of the
# time (the same bytes for all 15,584 link records of dev-s1's first 20k events; non-ASCII text
# as UTF-8 where json wrote \u escapes, some floats in another notation, 0.00001 where json
# wrote 1e-05: the same values to any JSON reader). One record is encoded per forwarded event,
# and decoded again by the cluster agent.
_encode = msgspec.json.Encoder().encode


def _decode(data: bytes):
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)  # a lone surrogate's escape (msgspec refuses it), or not JSON: json says


# Not frozen: a frozen dataclass sets each field through object.__setattr__, ~0.4 us a
# field, and one of these is built for every forwarded event (benchmarks/decode.py). Treat
# it as immutable; unsafe_hash keeps it hashable by value, as frozen did.
@dataclass(slots=True, unsafe_hash=True)
class LinkRecord:
    """One event as the cluster detector sees it: no text, a few hashes and ids.

    Built by :func:`distillguard.models.clusters.link_record` (which events are forwarded)
    and learned by :meth:`distillguard.models.clusters.ClusterDetector.observe_link`.
    """

    api_key_id: str
    account_id: str
    ts_ms: int
    style: float  # the event's extraction style as harvested (0..1)
    head: int  # hash of the prompt's opening frame (features' template hash)
    # The link values below but the payment method are set only on records of the linking
    # style (models/constants.py LINK_MIN_STYLE) or more: the others link by payment method
    # only, and their tail is -1, their net, asn and ua_hash None.
    tail: int  # hash of the prompt's closing frame
    payment_fingerprint: str | None = None
    net: str | None = None  # the client's IP prefix (/24 or /48)
    asn: int | None = None
    ua_hash: int | None = None
    output_tokens: int = -1  # -1: usage not reported
    account_created_ms: int | None = None
    # Where the event sits in the input (partition, offset; -1: unknown, as in replay). A
    # worker that re-applies events (its key states restored older after a restart or a
    # rebalance) sends their records again; the detector learns each event once by this.
    source_partition: int = -1
    source_offset: int = -1
    topic_bucket: int = -1  # the prompt's coarse topic (0..255), -1 unknown: what a member covers
    key_events: int = -1  # the key's events so far, this one included (-1 unknown): its volume
    family: int = -1  # the prompt's content family (cohort.content_family), -1 unknown
    item: int = -1  # the prompt's item fingerprint (cohort.item_fingerprint), -1 unknown
    simhash: int = -1  # the prompt's 64-bit SimHash of content words (features), -1 unknown: its content sketch
    # A models.constants.ProductStatus. 1: the key's traffic held a real product's exculpatory
    # evidence at this event (many consistent end-user conversations, or templated
    # transformation, on a mature account: models.products); 2: that evidence was pending (an
    # app's follow-ups while it counts its first conversations: ProductEvidence.pending), which
    # a cluster counts as a product's; 3: an evaluation's evidence pending
    # (ProductEvidence.evaluation_pending), counted so only while the cluster's such members are
    # one account's (one evaluation company; a hydra on bought verified accounts spans many); 4:
    # pending as 2, on an organisation's key whose first requests each opened a conversation (an
    # app's first users), counted by a cluster as 2, by a content cohort as 0; 0: neither, or an
    # older writer did not say (an older reader takes 3 as 1, 4 as 0).
    product: int = 0
    # 1: forwarded for the content-cohort detector only (one of a key's first requests, which
    # every key's are: models.clusters.records.link_record); the cluster detector's links and
    # key statistics never see it. 0: forwarded for linking as well, or an older writer's.
    cohort_only: int = 0
    # How the prompt opens: a 32-bit hash of its first two words, normalised
    # (cohort.prompt_opening); -1 unknown (not computed, or an older writer's record). Set
    # where family is (a young account's events and a key's first ones).
    opening: int = -1

    def to_bytes(self) -> bytes:
        """The record on the links topic: its fields as a compact JSON array."""
        fields = [self.api_key_id, self.account_id, self.ts_ms, self.style, self.head, self.tail,
                  self.payment_fingerprint, self.net, self.asn, self.ua_hash, self.output_tokens,
                  self.account_created_ms, self.source_partition, self.source_offset, self.topic_bucket,
                  self.key_events, self.family, self.item, self.simhash, self.product, self.cohort_only,
                  self.opening]
        try:
            return _encode(fields)
        except UnicodeEncodeError:
            # A lone surrogate (decoding dead-letters identity fields with one and repairs the
            # others, so none should reach here): json escapes what UTF-8 cannot carry.
            return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LinkRecord":
        return cls.from_fields(_decode(data))

    @classmethod
    def from_fields(cls, fields: list) -> "LinkRecord":
        """From its JSON fields: an older worker's record lacks the trailing ones (their
        defaults apply), a newer one's may carry more (ignored, so that a rolling upgrade's
        old cluster agent still reads what new workers send)."""
        return cls(*fields[:_FIELDS])


_FIELDS = len(dataclasses.fields(LinkRecord))


def link_batch_bytes(records: list[bytes]) -> bytes:
    """One links-topic message carrying many records (each ``LinkRecord.to_bytes()``)."""
    return b"[" + b",".join(records) + b"]"


def link_records_in(message: bytes) -> list[LinkRecord]:
    """The link records of a links-topic message: a batch, or one record (as sent before
    batching, still read when a worker rebuilds from an older topic)."""
    if message[:2] == b"[[":
        return [LinkRecord.from_fields(fields) for fields in _decode(message)]
    return [LinkRecord.from_bytes(message)]
