"""Helpers of the cluster detector's tests: link records made by hand, and feeding them."""
from __future__ import annotations

from distillguard.models.clusters import ClusterDetector, LinkRecord

COT = 1.0
T0 = 1_769_904_000_000


def rec(key: str, i: int, *, style: float = COT, pf: str | None = None, net: str | None = None,
        head: int | None = None, tail: int | None = None, asn: int | None = None, ua: int | None = None,
        account: str | None = None, minutes: float = 1.0, output_tokens: int = -1,
        account_created_ms: int | None = None) -> LinkRecord:
    return LinkRecord(key, account or f"acct-{key}", T0 + int(i * minutes * 60_000), style,
                      head if head is not None else hash((key, i, "h")) & 0xFFFF_FFFF,
                      tail if tail is not None else hash((key, i, "t")) & 0xFFFF_FFFF, pf, net, asn, ua,
                      output_tokens, account_created_ms)


def feed(detector: ClusterDetector, records) -> list[dict]:
    return [a for r in records for a in detector.observe_link(r) if a["entity_type"] == "cluster"]


