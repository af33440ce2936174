"""Helpers of the cluster detector's tests: link records made by hand, and feeding them."""
from __future__ import annotations

import zlib

from distillguard.models.clusters import (ClusterDetector, LinkMembers, LinkRecord, LinkRefresh, SenderClock, link_step,
                                          link_value_key)

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




def judge_value(det: ClusterDetector, table: dict[bytes, bytes], key: bytes, kind: str, member: str,
                ts: int) -> list[dict]:
    """One link value judged as the link-values agent judges it (``ClusterStage.judge_link_value``)
    against a bytes table keyed like the topic; the join it finds goes to ``det``."""
    link = LinkMembers.from_bytes(table.get(key)) or LinkMembers(first_ts=ts)
    others = link_step(link, kind, member, ts, window_ms=det.config.window_ms,
                       min_coordinated=det.config.min_coordinated, max_members=det.config.max_members)
    table[key] = link.to_bytes()
    return det.observe_join(kind, member, others, ts, [link.members[o] for o in others]) if others else []


def split_stage(records, det: ClusterDetector, records_lag: int = 0, *, senders=None, partitions: int = 8,
                idle_ms: int | None = None, expire_every: int = 100, slowest_sender: bool = True) -> list[dict]:
    """The workers' topology in one process: behaviour to the detector, link values through a
    bytes table keyed like the link-values topic, joins back to the detector.

    ``records_lag``: the behaviour records reach the detector that many records after the joins
    their link values make (in a worker they are batched to the links topic at the flush tick,
    while link values go out at once: under load a whole sweep's joins can come first).
    ``idle_ms``: also expire idle values every ``expire_every`` records, as the stage's timer
    does (``streams/clusters_stage.py``), against ``SenderClock`` (``senders``: each record's input
    partition; a millisecond of wall time a record, so no sender falls quiet) or, with
    ``slowest_sender=False``, against the newest time any partition reached (the rule before it)."""
    table: dict[bytes, bytes] = {}
    refresh = LinkRefresh(det.config.link_refresh_ms, det.config.max_keys)  # what a worker sends
    clock = SenderClock(quiet_after_s=300, senders=range(partitions), now_s=0)
    alerts, waiting = [], []
    for n, r in enumerate(records):
        now = n / 1000
        if idle_ms is not None and n % expire_every == 0:
            for value_key in list(table):
                horizon = clock.horizon(zlib.crc32(value_key) % partitions, now, idle_ms) if slowest_sender \
                    else clock.newest - idle_ms
                if LinkMembers.from_bytes(table[value_key]).last_ts < horizon:
                    del table[value_key]
        waiting.append(r)
        if len(waiting) > records_lag:
            alerts += det.observe_link(waiting.pop(0), link=False)
        for kind, value in det.values_to_link(r):
            if not refresh.due(r.api_key_id, (kind, value), r.ts_ms):
                continue
            key = link_value_key(kind, value)
            clock.observe(zlib.crc32(key) % partitions, senders[n] if senders is not None else 0, r.ts_ms, now)
            alerts += judge_value(det, table, key, kind, r.api_key_id, r.ts_ms)
    for r in waiting:
        alerts += det.observe_link(r, link=False)
    return [a for a in alerts if a["entity_type"] == "cluster"]
