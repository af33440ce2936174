"""Linking: which keys one link value (a payment method, an account, a network, a prompt frame,
an ASN + client) joins, and when.

Shared by the cluster detector's in-process table (replay, the cluster agent) and the
workers' partitioned link-values stage (``streams/clusters_stage.py``), so both link alike.
"""
from __future__ import annotations

import heapq
import json
from collections import OrderedDict
from dataclasses import dataclass, field

from ...contracts.link_record import LinkRecord

STRONG = ("pf", "acct", "net")  # link kinds that join keys at once; the frames need lockstep
# Link kinds that join keys whenever they were seen: a payment method or an account is the
# same party for good. Every other kind (an IP prefix is reassigned: DHCP, proxy pools; a
# frame or an ASN + UA is shared by chance) joins only keys enrolled together.
DURABLE = ("pf", "acct")
# Weak kinds whose value must also have stayed below ``max_members`` for a whole window
# before it links anything: most such values are shared by many unrelated keys.
SLOW = ("asnua",)
# Kinds that are the prompt's own frames: joining by one marks both keys as in lockstep.
CONTENT_KINDS = frozenset({"head", "tail"})


@dataclass(slots=True)
class LinkMembers:
    """One link value's members: in the detector's own table (replay) or, in the workers, one
    entry of the changelogged ``link-members`` table, partitioned by the value."""

    members: OrderedDict = field(default_factory=OrderedDict)  # key -> last ts_ms
    common: bool = False
    linking: bool = False  # its current members are already joined into one cluster
    first_ts: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps([self.first_ts, int(self.common), int(self.linking), list(self.members.items())],
                          separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> "LinkMembers | None":
        if not data:
            return None
        first_ts, common, linking, members = json.loads(data)
        return cls(OrderedDict((k, int(t)) for k, t in members), bool(common), bool(linking), int(first_ts))

    @property
    def last_ts(self) -> int:
        return next(reversed(self.members.values()), self.first_ts)


def link_step(link: LinkMembers, kind: str, key: str, ts: int, *, window_ms: int, min_coordinated: int,
              max_members: int, known=None, max_others: int = 4) -> list[str]:
    """Add ``key`` to one link value (in place); returns the keys it now links ``key`` with.

    Shared by the detector's in-process table and the workers' partitioned link-members
    table. ``known`` (a predicate) picks, once the value's members are one cluster, the most
    recent member the caller tracks; without it the ``max_others`` members nearest in event time
    to ``ts`` are returned (the partitioned stage, which does not know when keys enrolled).
    """
    if link.common:
        return []
    link.members[key] = ts
    link.members.move_to_end(key)
    horizon = ts - window_ms
    while link.members and next(iter(link.members.values())) < horizon:
        link.members.popitem(last=False)  # members idle past the window
    if len(link.members) > max_members:
        link.common, link.members = True, OrderedDict()
        return []
    if not link.linking:
        if kind not in STRONG and len(link.members) < min_coordinated:
            return []
        if kind in SLOW and ts - link.first_ts < window_ms:
            return []  # not yet known to be rare: a big cloud's ASN + SDK turns common first
        link.linking = True
        return [k for k in link.members if k != key]
    # Every other member is already in one cluster: joining one of them joins them all.
    if known is None:
        # The members nearest in event time to this join: a weak link joins only keys enrolled
        # together (ClusterDetector._enrolled_together), and when input partitions run at their
        # own pace the most recent members to arrive can be hours of event time from a lagging
        # partition's key, while the value's older members are of its own hours.
        others = [other for other in link.members if other != key]
        if len(others) > max_others:
            others = heapq.nsmallest(max_others, others, key=lambda other: abs(link.members[other] - ts))
        return others
    for other in reversed(link.members):
        if other != key and known(other):
            return [other]
    return []


class LinkRefresh:
    """Which (key, link value) pairs are due to be linked again: each pair at most once per
    ``refresh_ms`` of event time.

    A key's account, payment fingerprint, network and client are the same on every event,
    and a sweep repeats its frames: re-linking them per event only moves the member's
    timestamp (idle members leave a value after its window, much longer than this). Bounded:
    the oldest pairs are forgotten past ``max_pairs`` (they are then linked once more).

    >>> refresh = LinkRefresh(refresh_ms=600_000)
    >>> refresh.due("k1", ("acct", "a1"), 0), refresh.due("k1", ("acct", "a1"), 60_000)
    (True, False)
    >>> refresh.due("k2", ("acct", "a1"), 60_000), refresh.due("k1", ("acct", "a1"), 600_000)
    (True, True)
    """

    def __init__(self, refresh_ms: int = 600_000, max_pairs: int = 200_000) -> None:
        self.refresh_ms = refresh_ms
        self.max_pairs = max_pairs
        self._sent: OrderedDict[tuple, int] = OrderedDict()

    def due(self, key: str, kind_value: tuple[str, object], ts: int) -> bool:
        pair = (key, kind_value)
        last = self._sent.get(pair)
        if last is not None and 0 <= ts - last < self.refresh_ms:
            return False
        self._sent[pair] = ts
        self._sent.move_to_end(pair)
        if len(self._sent) > self.max_pairs:
            self._sent.popitem(last=False)
        return True


class SenderClock:
    """The event time every sender of link values has reached: how far idle link values may be
    forgotten without forgetting what a lagging sender's keys still share.

    A link-values partition hears from every input partition (a sender), each at its own pace:
    under a backlog one can be hours of event time behind another. Against the fastest sender's
    time a shared value looks idle while the slowest sender's keys still join it; forgotten,
    their later members would open a fresh value and a second sub-cluster of the same hydra.
    So the clock is the slowest sender's (a stream processor's watermark), per link-values
    partition. A sender quiet for ``quiet_after_s`` of wall time no longer holds it back (an
    idle source, as Flink's idleness timeout): a partition gone quiet must not keep every value
    for ever. Every sender in ``senders`` counts from the clock's start, so one not heard from
    yet (its partition not yet handed over) holds the clock until it speaks or stays quiet that
    long. With no sender holding it, the clock is the newest time heard.

    Bounded: one entry per (link-values partition, sender) pair.

    >>> clock = SenderClock(quiet_after_s=60, senders=(0, 1), now_s=0)
    >>> clock.observe(0, sender=0, ts_ms=9_000, now_s=1)
    >>> clock.reached(0, now_s=2)  # sender 1 not heard yet: nothing may expire
    -1
    >>> clock.observe(0, sender=1, ts_ms=2_000, now_s=3)
    >>> clock.reached(0, now_s=4), clock.reached(None, now_s=4)  # the lagging sender's time
    (2000, 2000)
    >>> clock.reached(0, now_s=70)  # sender 1 quiet for a minute: the others' time
    9000
    """

    def __init__(self, quiet_after_s: float, senders=(), now_s: float = 0.0) -> None:
        self.quiet_after_s = quiet_after_s
        self.newest = -1
        self._expected = tuple(senders)
        self._started_s = now_s
        self._heard: dict[tuple[int, int], tuple[int, float]] = {}  # (partition, sender) -> (newest ts, when)

    def observe(self, partition: int, sender: int, ts_ms: int, now_s: float) -> None:
        pair = (partition, sender)
        newest, _ = self._heard.get(pair, (-1, now_s))
        self._heard[pair] = (max(newest, ts_ms), now_s)
        self.newest = max(self.newest, ts_ms)

    def horizon(self, partition: int | None, now_s: float, idle_ms: int) -> int:
        """A value of ``partition`` whose members last joined before this is idle (-1: none is)."""
        reached = self.reached(partition, now_s)
        return reached - idle_ms if reached >= 0 else -1

    def reached(self, partition: int | None, now_s: float) -> int:
        """The event time every sender still talking has reached on ``partition`` (on every
        partition for None: a value known only from the changelog); -1 while none is known."""
        if now_s - self._started_s < self.quiet_after_s:  # a sender not heard yet holds it
            partitions = {p for p, _ in self._heard} if partition is None else {partition}
            for p in partitions or {None}:
                if any((p, sender) not in self._heard for sender in self._expected):
                    return -1
        held = self.newest
        for (p, _), (ts, seen) in self._heard.items():
            if (partition is None or p == partition) and now_s - seen < self.quiet_after_s:
                held = min(held, ts)
        return held


def link_value_key(kind: str, value: object) -> bytes:
    """The Kafka key of a link value on the link-values topic (what partitions the table)."""
    if isinstance(value, tuple):
        value = "/".join(str(v) for v in value)
    return f"{kind}:{value}".encode("utf-8", "surrogatepass")


def link_values(rec: LinkRecord) -> list[tuple[str, object]]:
    """Every link value one record offers, as (kind, value)."""
    values: list[tuple[str, object]] = [("acct", rec.account_id), ("head", rec.head), ("tail", rec.tail)]
    if rec.payment_fingerprint:
        values.append(("pf", rec.payment_fingerprint))
    if rec.net:
        values.append(("net", rec.net))
    # ASN + user agent says little on its own (every customer of a big cloud with the same
    # SDK shares it), so it is a weak link: it joins keys only in lockstep, like a frame.
    if rec.asn and rec.ua_hash:
        values.append(("asnua", (rec.asn, rec.ua_hash)))
    return values
