"""Cross-key detection of coordinated ("hydra") campaigns.

A hydra is many small keys, each under every per-key limit, sharing some infrastructure
(payment method, account, IP prefix, ASN + user agent) or only content frames and timing,
and splitting one systematic prompt set between them. Per key they look like a short
burst; together they are a sweep.

Only extraction-style events (``features.style >= min_style``) create links, so ordinary
traffic behind one NAT, a reseller or a templated app does not cluster; with one exception,
the payment ring (below). Each link value keeps a bounded set of recent member keys:

* strong links (payment fingerprint, account, IP /24 or /48) join keys at once;
* weak links (opening and closing template frames) join keys only when
  ``min_coordinated`` keys used the value within ``window_ms``, i.e. in lockstep;
* a value shared by more than ``max_members`` keys (a big cloud ASN, a popular UA) stops
  linking: a common value says little;
* only a payment fingerprint or an account joins keys whenever they were seen; every other
  value joins two keys only when they began extracting within ``enrollment_window_ms`` of
  each other (a hydra's heads are enrolled together; unrelated campaigns using the same
  public prompt frames or proxy pool a day apart are not one campaign).

Linked keys are merged with union-find; a cluster is scored on the joint behaviour of its
members (extraction-style share of all their events, number of keys, volume, and whether
they split one sweep's topics between them or each swept them all) and raises
one ``entity_type: cluster`` alert whose id stays the same as the cluster grows: it is
re-sent (an update, not a new page) with every member key as members join, also after its
sweep has ended (a pending update falls due on any record's event time). An account
that holds ``account_min_keys`` or more extraction-like keys also raises one
``entity_type: account`` alert (the unit a provider suspends).

A hydra that words its sweep as plain instructions shows no extraction style, but its
accounts still pay. Every key that pays with a payment method sends a sample of its events
(``link_record``), and its payment method alone links it: keys of ``ring_min_accounts`` or
more accounts on one payment method, first seen within ``ring_enrollment_ms`` of each other,
each with ``ring_min_key_events`` or more requests answered at harvest length, are a payment
ring. A ring of ``min_keys`` such keys raises a cluster incident by itself (a warning:
critical takes extraction), and ring members linked to an extraction cluster are named in
its incident. One customer's keys share its card (one account); a team's accounts on one
card that began together and ask for long answers would be a ring too: a warning, for a
human to look at what its keys ask.

>>> det = ClusterDetector(min_keys=3, min_events=6)
>>> from distillguard.models.events import parse_event
>>> alerts = []
>>> for i in range(12):
...     raw = ('{"schema":"llm.request.v1","event_id":"e%d","ts":"2026-02-01T00:00:%02dZ","api_key_id":"k%d",'
...            '"account_id":"a%d","model":"m","prompt":"Think step by step and show all your reasoning: q%d",'
...            '"account":{"payment_fingerprint":"pf_shared"}}' % (i, i, i % 4, i % 4, i))
...     alerts += det.observe(parse_event(raw.encode()))
>>> alerts[0]["entity_type"], sorted(alerts[0]["api_key_ids"])
('cluster', ['k0', 'k1', 'k2'])
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
import itertools
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..contracts.alert import Severity
from ..contracts.alert import iso_ms as _iso  # the one time format of every record
from .cohort import MAX_KEY_EVENTS, CohortDetector, content_family, item_fingerprint, young_account
from .events import RequestEvent
from .features import EventFeatures, _h64, answered_style, featurize, normalise_prompt

STRONG = ("pf", "acct", "net")  # link kinds that join keys at once; the frames need lockstep
# Link kinds that join keys whenever they were seen: a payment method or an account is the
# same party for good. Every other kind (an IP prefix is reassigned: DHCP, proxy pools; a
# frame or an ASN + UA is shared by chance) joins only keys enrolled together.
DURABLE = ("pf", "acct")
# Weak kinds whose value must also have stayed below ``max_members`` for a whole window
# before it links anything: most such values are shared by many unrelated keys.
SLOW = ("asnua",)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, ~0.4 us a
# field, and one of these is built for every event (benchmarks/decode.py). Treat it as
# immutable; unsafe_hash keeps it hashable by value, as frozen did.
@dataclass(slots=True, unsafe_hash=True)
class LinkRecord:
    """What the cluster detector needs of one event: no text, a few hashes and ids.

    The workers send it on the links topic (one partition: linking is global), replay
    hands it over directly; both go through :meth:`ClusterDetector.observe_link`.
    """

    api_key_id: str
    account_id: str
    ts_ms: int
    style: float
    head: int
    tail: int
    payment_fingerprint: str | None = None
    net: str | None = None
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

    @classmethod
    def from_event(cls, event: RequestEvent, f: EventFeatures, partition: int = -1,
                   offset: int = -1, key_events: int = -1) -> "LinkRecord":
        # The content family and item only for young accounts' events and a key's first
        # MAX_KEY_EVENTS (of a mature account: the few forwarded, see link_record): the cohort
        # detector reads nothing else, and they cost ~10 % of featurize per prompt.
        for_cohort = young_account(event.ts_ms, event.account_created_ms) or 0 < key_events <= MAX_KEY_EVENTS
        return cls(event.api_key_id, event.account_id, event.ts_ms, round(_harvest_style(f), 4), f.template_hash,
                   _tail_frame(event.prompt), event.payment_fingerprint, _net(event.client_ip), event.asn,
                   _h64(event.user_agent) if event.user_agent else None, f.output_tokens,
                   event.account_created_ms, partition, offset, f.topic_bucket, key_events,
                   content_family(event.prompt) if for_cohort else -1,
                   item_fingerprint(event.prompt) if for_cohort else -1,
                   f.simhash)

    def to_bytes(self) -> bytes:
        return json.dumps([self.api_key_id, self.account_id, self.ts_ms, self.style, self.head, self.tail,
                           self.payment_fingerprint, self.net, self.asn, self.ua_hash, self.output_tokens,
                           self.account_created_ms, self.source_partition, self.source_offset, self.topic_bucket,
                           self.key_events, self.family, self.item, self.simhash],
                          separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LinkRecord":
        return cls.from_fields(json.loads(data))

    @classmethod
    def from_fields(cls, fields: list) -> "LinkRecord":
        """From its JSON fields: an older worker's record lacks the trailing ones (their
        defaults apply), a newer one's may carry more (ignored, so that a rolling upgrade's
        old cluster agent still reads what new workers send)."""
        return cls(*fields[:_LINK_FIELDS])


_LINK_FIELDS = len(dataclasses.fields(LinkRecord))


def link_batch_bytes(records: list[bytes]) -> bytes:
    """One links-topic message carrying many records (each ``LinkRecord.to_bytes()``)."""
    return b"[" + b",".join(records) + b"]"


def link_records_in(message: bytes) -> list[LinkRecord]:
    """The link records of a links-topic message: a batch, or one record (as sent before
    batching, still read when a worker rebuilds from an older topic).

    >>> one = LinkRecord("k", "a", 1, 1.0, 2, 3)
    >>> link_records_in(link_batch_bytes([one.to_bytes(), one.to_bytes()])) == [one, one]
    True
    >>> link_records_in(one.to_bytes()) == [one]
    True
    """
    if message[:2] == b"[[":
        return [LinkRecord.from_fields(fields) for fields in json.loads(message)]
    return [LinkRecord.from_bytes(message)]


# Output tokens below which one answer harvests little (a letter, a label, a final number).
MIN_HARVEST_TOKENS = 150


def _harvest_style(f: EventFeatures) -> float:
    """The event's extraction style, discounted when its answer was short: a final-answer
    eval or a classifier behind one frame collects no teacher signal worth distilling, so it
    must not count as a hydra member (unknown usage stays undiscounted)."""
    if 0 <= f.output_tokens < MIN_HARVEST_TOKENS:
        return f.style * f.output_tokens / MIN_HARVEST_TOKENS
    return answered_style(f)


def link_record(event: RequestEvent, result, min_score: float = 0.01, *, partition: int = -1,
                offset: int = -1) -> LinkRecord | None:
    """The link record to forward for a processed event, or None for ordinary traffic.

    Forwarded: extraction-style events, and every event of a key that has shown any
    extraction style (so the cluster sees its members' whole volume); and, of every key
    that pays with a payment method, a sample of its events (its 1st, 2nd, 4th, 8th, ...
    and every 64th: a few records per key, for the payment rings of ``ClusterDetector``);
    and the first ``MAX_KEY_EVENTS`` events of a key whose account is young
    (``cohort.YOUNG_MS``: what the content cohorts of ``CohortDetector`` are made of: their members
    send 10-40 plain requests each; young accounts are a small share of ordinary traffic).
    Shared by the workers and replay, so both feed the cluster detector the same records.
    """
    if result.duplicate or result.features is None:
        return None
    n = result.key_events
    if result.features.style > 0 or (result.row is not None and result.row["score"] > min_score) or (
            event.payment_fingerprint and n > 0 and (n & (n - 1) == 0 or n % 64 == 0)) or (
            0 < n <= MAX_KEY_EVENTS and young_account(event.ts_ms, event.account_created_ms)):
        return LinkRecord.from_event(event, result.features, partition, offset, n or -1)
    return None


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
    recent member the caller tracks; without it the ``max_others`` most recent are returned.
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
    others = []
    for other in reversed(link.members):
        if other != key and (known is None or known(other)):
            others.append(other)
            if known is not None or len(others) >= max_others:
                break
    return others


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


def link_value_key(kind: str, value: object) -> bytes:
    """The Kafka key of a link value on the link-values topic (what partitions the table)."""
    if isinstance(value, tuple):
        value = "/".join(str(v) for v in value)
    return f"{kind}:{value}".encode("utf-8", "surrogatepass")


@dataclass(slots=True)
class _KeyStats:
    events: int = 0
    suspicious: int = 0
    output_tokens: int = 0  # summed over the events whose usage was reported
    reported: int = 0
    account_age_ms: int | None = None  # account age at the key's first tracked event
    first_ts: int = 0
    last_ts: int = 0
    rate_evidence: float = 0.0  # CUSUM: its extraction rate is a campaign's, not the population's
    in_lockstep: bool = False  # sent the same prompt frame as other keys within the window
    # What this key adds to its cluster's running totals (see ClusterDetector._refresh).
    core: bool = False
    named: bool = False
    core_events: int = 0
    core_suspicious: int = 0
    source: tuple[int, int] = (-1, -1)  # input partition and offset of its last record learned
    topics: int = 0  # bit b: it sent a prompt of coarse topic b (of 64) - what it covered of the sweep
    # The payment rings' view of the key, from every record (sampled or not): the above
    # counts only from its first extraction event on (``extracting``).
    extracting: bool = False
    seen_ts: int = 0  # its first record
    key_events: int = 0  # the key's own count of its events (records are a sample of them)
    ring_tokens: int = 0
    ring_reported: int = 0
    account: str = ""
    pf_ring: bool = False  # joined by its payment method to a key enrolled with it
    ring: bool = False  # a member of a payment ring (see ClusterDetector._ring_member)
    ring_events: int = 0


@functools.lru_cache(maxsize=1 << 16)  # a key sends from a few addresses, IPv6 ones cost ~10 us to parse
def _net(ip: str | None) -> str | None:
    if not ip:
        return None
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0")
                               for p in parts):
        return f"{int(parts[0])}.{int(parts[1])}.{int(parts[2])}.0/24"  # the common case, without ipaddress
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _tail_frame(text: str) -> int:
    # Normalised (models/normalise.py) like every other text signal: a campaign that varies
    # zero-width characters or combining marks per request must not escape lockstep linking
    # (obfuscated dev-s1: one such campaign had 25 of 79 keys linked on the raw text). Cut
    # before normalising, which only shortens text, so the last 400 characters are there.
    words = normalise_prompt(text[-800:])[-400:].split()  # (featurize normalised a shorter prompt already)
    return _h64(" ".join(w for w in words[-8:] if not any(c.isdigit() for c in w)))


class ClusterDetector:
    """Online linking of keys into clusters and scoring of clusters. Bounded, deterministic."""

    detector = "distillguard.cluster/0.1"

    def __init__(self, *, min_style: float = 0.5, window_ms: int = 3_600_000, min_coordinated: int = 4,
                 max_members: int = 256, max_links: int = 100_000, max_keys: int = 200_000,
                 min_keys: int = 5, min_events: int = 60, min_share: float = 0.6, regrow: float = 1.1,
                 update_interval_ms: int = 600_000, account_min_keys: int = 3, member_evidence: float = 8.0,
                 base_rate: float = 0.05, campaign_rate: float = 0.25,
                 link_refresh_ms: int = 600_000, enrollment_window_ms: int = 7_200_000,
                 ring_min_accounts: int = 3, ring_min_key_events: int = 8,
                 ring_enrollment_ms: int = 1_800_000, incident_grid_ms: int = 3_600_000,
                 cohort: CohortDetector | None = None) -> None:
        self.min_style = min_style
        # Content cohorts (keys linked by nothing but the item set they split): learned from
        # the same link records, their incidents sent with this detector's.
        self.cohort = cohort if cohort is not None else CohortDetector()
        self.cohort.is_linked = self._in_cluster
        # A payment ring: keys of ring_min_accounts or more accounts paying with one payment
        # method, each first seen within ring_enrollment_ms of another (dev streams: a
        # hydra's heads on one card within 1-24 minutes), each with ring_min_key_events or
        # more requests answered at harvest length (a point of link_record's sample, 1, 2,
        # 4, 8, ...: what the detector knows of a key's count). No extraction style needed:
        # hydras that word their prompts as plain instructions still pay (_ring_member).
        self.ring_min_accounts = ring_min_accounts
        self.ring_min_key_events = ring_min_key_events
        self.ring_enrollment_ms = ring_enrollment_ms
        # Every link kind but a payment method or an account joins two keys only when they
        # began extracting within this of each other (pairwise; a cluster grows by chains of
        # such pairs, so a hydra enrolled gradually stays one). A hydra's heads are enrolled
        # together. Without it, a long-running campaign using the same public prompt frames,
        # or the IP prefix of a shared proxy pool, chained every campaign of a week into one
        # incident (dev-s1: one 733-key incident of 37 campaigns). 2 h, not 1: camouflaged
        # heads show their first extraction prompt late (dev-s1: 74 min after the others).
        self.enrollment_window_ms = enrollment_window_ms
        self.link_refresh_ms = link_refresh_ms
        self._refresh_links = LinkRefresh(link_refresh_ms, max_keys)
        # A camouflaged member mixes ordinary prompts into its share of the sweep, so it is
        # also named once its sequential evidence (the per-key detector's test, on the events
        # seen here) reaches member_evidence: about half the level that pages a lone key,
        # because being linked to the cluster's core is evidence too.
        self.member_evidence = member_evidence
        self._llr_up = math.log(campaign_rate / base_rate)
        self._llr_down = math.log((1.0 - campaign_rate) / (1.0 - base_rate))
        self.window_ms = window_ms
        self.min_coordinated = min_coordinated
        self.max_members = max_members
        self.max_links = max_links
        self.max_keys = max_keys
        self.min_keys = min_keys
        self.min_events = min_events
        self.min_share = min_share
        self.regrow = regrow
        # A cluster incident is named after the hour its earliest core member began extracting
        # (see _incident_id): wider, two campaigns more often begin in one; narrower, a
        # campaign whose first heads are known in another order straddles a boundary more often.
        self.incident_grid_ms = incident_grid_ms
        self.update_interval_ms = update_interval_ms
        self.account_min_keys = account_min_keys
        self._links: OrderedDict[tuple[str, object], LinkMembers] = OrderedDict()
        self._keys: OrderedDict[str, _KeyStats] = OrderedDict()
        self._parent: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        # root -> (alert id, members named so far, severity rank, event time of the last update)
        self._alerted: dict[str, tuple[str, int, int, int]] = {}
        self._evidence: dict[str, dict[str, int]] = {}  # root -> link kind -> joins
        # root -> [core members, their events, their suspicious events, named members, payment
        # ring members, their events]: kept up to date per event, so scoring a cluster costs
        # O(1), not O(members), per event.
        self._totals: dict[str, list[int]] = {}
        self._ring_accounts: dict[str, dict[str, int]] = {}  # root -> account -> its ring members
        self._pending: set[str] = set()  # alerted roots with members not yet named
        self._next_update_ms = 0  # event time at which the earliest pending update falls due
        # The latest event time learned: what paces a cluster's updates. The records of
        # different input partitions interleave at the workers' pace, so one record's time
        # jumps back and forth; paced on it, one update fell due on a partition ahead, the
        # next on one behind, and so on.
        self._clock = 0
        self._accounts: dict[str, set[str]] = {}  # account -> its extraction-like keys
        self._account_alerted: dict[str, int] = {}  # account -> keys named so far

    # -- union-find ------------------------------------------------------------------------
    def _find(self, key: str) -> str:
        root = key
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        while self._parent.get(key, key) != root:  # path compression
            self._parent[key], key = root, self._parent[key]
        return root

    def _union(self, a: str, b: str, kind: str = "") -> str:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return ra
        ma, mb = self._members.get(ra, {ra}), self._members.get(rb, {rb})
        # An alerted cluster absorbs one not alerted; otherwise the larger set absorbs the smaller.
        if (rb in self._alerted and ra not in self._alerted) or (
                (ra in self._alerted) == (rb in self._alerted) and len(mb) > len(ma)):
            ra, rb, ma, mb = rb, ra, mb, ma
        self._parent[rb] = ra
        absorbed_totals = self._totals.pop(rb, None)
        if absorbed_totals:
            totals = self._totals.setdefault(ra, [0] * _TOTALS)
            for i, v in enumerate(absorbed_totals):
                totals[i] += v
        absorbed_accounts = self._ring_accounts.pop(rb, None)
        if absorbed_accounts:
            accounts = self._ring_accounts.setdefault(ra, {})
            for account, n in absorbed_accounts.items():
                accounts[account] = accounts.get(account, 0) + n
        ma |= mb
        self._members[ra] = ma
        self._members.pop(rb, None)
        # Which evidence joined the cluster (kind -> joins), for the humans reading its alert.
        evidence = self._evidence.setdefault(ra, {})
        for k, n in self._evidence.pop(rb, {}).items():
            evidence[k] = evidence.get(k, 0) + n
        if kind:
            evidence[kind] = evidence.get(kind, 0) + 1
        if rb in self._pending:
            self._pending.discard(rb)
            self._pending.add(ra)
        if rb in self._alerted:
            absorbed = self._alerted.pop(rb)
            kept = self._alerted.get(ra)
            # Two open incidents merging go on as the one with the smaller id, i.e. the one
            # whose campaign began first (ids sort by that hour): whichever was found first
            # or is larger, the worker and replay then keep the same one.
            if kept is None or absorbed[0] < kept[0]:
                self._alerted[ra] = absorbed
        return ra

    def _enrolled_together(self, a: str, b: str) -> bool:
        """Whether keys ``a`` and ``b`` began extracting within ``enrollment_window_ms`` of
        each other (what a weak link needs to join them). An evicted key joins nothing."""
        sa, sb = self._keys.get(a), self._keys.get(b)
        return sa is not None and sb is not None and abs(sa.first_ts - sb.first_ts) <= self.enrollment_window_ms

    def _in_cluster(self, key: str) -> bool:
        """In a cluster of ``min_keys`` or more keys (linked by infrastructure or frames)."""
        return len(self._members.get(self._find(key), ())) >= self.min_keys

    def cluster_of(self, key: str) -> set[str]:
        return set(self._members.get(self._find(key), {key}))

    # -- bookkeeping -----------------------------------------------------------------------
    def _touch_key(self, key: str, ts: int, suspicious: bool, style: float = 0.0) -> _KeyStats:
        stats = self._keys.get(key)
        if stats is None:
            stats = self._keys[key] = _KeyStats(first_ts=ts, seen_ts=ts)
            if len(self._keys) > self.max_keys:
                self._evict_key()
        else:
            self._keys.move_to_end(key)
        stats.last_ts = ts
        if suspicious and not stats.extracting:
            stats.extracting, stats.first_ts = True, ts
        if stats.extracting:
            # Its behaviour as an extraction member counts from its first extraction event on
            # (the records sampled before it, for the payment rings, do not dilute its share).
            stats.events += 1
            stats.suspicious += int(suspicious)
            llr = style * self._llr_up + (1.0 - style) * self._llr_down
            stats.rate_evidence = max(0.0, min(4.0 * self.member_evidence, stats.rate_evidence + llr))
        return stats

    def _evict_key(self) -> None:
        # Drop the least recently seen key that is not part of a cluster (singletons only);
        # when the oldest keys are all clustered, drop the least recently seen whole cluster:
        # the table is bounded whatever the traffic (its alerts were sent; a cluster that
        # comes back is detected afresh under a new incident).
        for key in list(itertools.islice(self._keys, 64)):  # O(64), not O(max_keys)
            if self._find(key) == key and len(self._members.get(key, {key})) == 1:
                del self._keys[key]
                self._parent.pop(key, None)
                self._members.pop(key, None)
                self._totals.pop(key, None)
                self._ring_accounts.pop(key, None)
                return
        root = self._find(next(iter(self._keys)))
        for key in self._members.pop(root, {root}):
            self._keys.pop(key, None)
            self._parent.pop(key, None)
        self._alerted.pop(root, None)
        self._evidence.pop(root, None)
        self._totals.pop(root, None)
        self._ring_accounts.pop(root, None)
        self._pending.discard(root)

    @staticmethod
    def link_values(rec: LinkRecord) -> list[tuple[str, object]]:
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

    def values_to_link(self, rec: LinkRecord) -> list[tuple[str, object]]:
        """The link values one record offers: every kind for an extraction-style event; for an
        ordinary one only its payment method (what a payment ring is made of)."""
        if rec.style >= self.min_style:
            return self.link_values(rec)
        return [("pf", rec.payment_fingerprint)] if rec.payment_fingerprint else []

    def _link(self, kind_value: tuple[str, object], key: str, ts: int) -> list[str]:
        """Add ``key`` to a link value; returns the keys it now links ``key`` with."""
        link = self._links.get(kind_value)
        if link is None:
            link = self._links[kind_value] = LinkMembers(first_ts=ts)
            if len(self._links) > self.max_links:
                self._links.popitem(last=False)
        else:
            self._links.move_to_end(kind_value)
        if kind_value[0] in DURABLE:
            known = self._keys.__contains__
        else:
            def known(other: str) -> bool:
                return other in self._keys and self._enrolled_together(key, other)
        return link_step(link, kind_value[0], key, ts, window_ms=self.window_ms,
                         min_coordinated=self.min_coordinated, max_members=self.max_members, known=known)

    # -- the step ---------------------------------------------------------------------------
    def observe(self, event: RequestEvent, features: EventFeatures | None = None) -> list[dict]:
        return self.observe_link(LinkRecord.from_event(event, features or featurize(event)))

    def observe_link(self, rec: LinkRecord, *, link: bool = True) -> list[dict]:
        """Learn one link record; returns the cluster / account alerts it raises or updates.

        ``link=False``: learn the key's behaviour only; its link values are judged elsewhere
        (the workers' partitioned link-values stage) and arrive through :meth:`observe_join`.
        """
        stats_before = self._keys.get(rec.api_key_id)
        if stats_before is not None and rec.source_offset >= 0:
            partition, offset = stats_before.source
            if rec.source_partition == partition and rec.source_offset <= offset:
                return []  # sent again for an event re-applied upstream: learned already
        self._clock = max(self._clock, rec.ts_ms)
        qualified_before = stats_before is not None and self._qualifies(stats_before)
        named_before = stats_before is not None and self._named(stats_before)
        alerts = [a for a in (self._observe_cluster(rec, qualified_before, named_before, link),) if a is not None]
        if link:
            # Content cohorts are keys in no infrastructure cluster: known here only when this
            # detector links (replay, the cluster agent by default). With the partitioned
            # link-values stage a key's joins arrive after its records, and a hydra's young
            # heads made a cohort incident that replay does not raise: not done there.
            alerts.extend(self.cohort.learn_one(rec, linked=self._in_cluster(rec.api_key_id)))
        alerts.extend(self._due_updates(self._clock))
        stats = self._keys.get(rec.api_key_id)
        if stats is not None and not qualified_before and self._qualifies(stats):
            account_alert = self._account(rec)
            if account_alert is not None:
                alerts.append(account_alert)
        return alerts

    def _due_updates(self, ts_ms: int) -> list[dict]:
        """Updates naming members that joined an alerted cluster since its last alert, once
        ``update_interval_ms`` of event time has passed: on any record, not only on the next
        one of that cluster, so the members that joined at the end of a sweep are named too."""
        if not self._pending or ts_ms < self._next_update_ms:
            return []
        alerts, next_due = [], None
        for root in list(self._pending):
            due = self._alerted[root][3] + self.update_interval_ms if root in self._alerted else ts_ms
            if ts_ms >= due:
                alert = self._score(root, ts_ms)
                if alert is not None:
                    alerts.append(alert)
                else:
                    self._pending.discard(root)  # no longer scores (members evicted): nothing to name
            else:
                next_due = due if next_due is None else min(next_due, due)
        self._next_update_ms = next_due if next_due is not None else 0
        return alerts

    def _account(self, rec: LinkRecord) -> dict | None:
        keys = self._accounts.setdefault(rec.account_id, set())
        keys.add(rec.api_key_id)
        if len(self._accounts) > self.max_keys:
            self._accounts.pop(next(iter(self._accounts)))
        if len(keys) < self.account_min_keys:
            return None
        named = self._account_alerted.get(rec.account_id, 0)
        if named and len(keys) < named * self.regrow:
            return None
        self._account_alerted[rec.account_id] = len(keys)
        return {
            "schema": "distill.alert.v1", "alert_id": f"account:{rec.account_id}", "ts": _iso(rec.ts_ms),
            "entity_type": "account", "entity_id": rec.account_id, "api_key_ids": sorted(keys),
            "score": round(min(1.0, 1.0 - 1.0 / len(keys)), 4),
            "severity": (Severity.CRITICAL if len(keys) >= 2 * self.account_min_keys else Severity.WARNING).value,
            "reasons": [{"signal": "extraction_keys_in_account", "value": len(keys), "baseline": 1, "weight": 1.0}],
            "events_seen": sum(self._keys[k].events for k in keys if k in self._keys),
            "detector": self.detector,
        }

    def observe_join(self, kind: str, key: str, others: list[str], ts_ms: int) -> list[dict]:
        """One link value joined ``key`` with ``others`` (from the partitioned link-values
        stage); returns the cluster alert it raises or updates, if any."""
        stats = self._keys.get(key)
        if stats is None:
            return []  # not tracked (evicted): its next extraction event links it again
        self._clock = max(self._clock, ts_ms)
        before = stats.named
        merged = self._join(key, stats, kind, others)
        root = self._find(key)
        if root in self._alerted and root not in self._pending and not merged and before == stats.named:
            return []
        alert = self._score(root, ts_ms)
        return [alert] if alert is not None else []

    def _join(self, key: str, stats: _KeyStats, kind: str, others) -> bool:
        merged = False
        for other in others:
            other_stats = self._keys.get(other)
            if other_stats is None:
                continue
            if kind not in DURABLE and not self._enrolled_together(key, other):
                continue
            if kind in _CONTENT_KINDS and not (stats.in_lockstep and other_stats.in_lockstep):
                stats.in_lockstep = other_stats.in_lockstep = True
                self._refresh(key, stats)
                self._refresh(other, other_stats)
            if kind == "pf" and not (stats.pf_ring and other_stats.pf_ring) and \
                    abs(stats.seen_ts - other_stats.seen_ts) <= self.ring_enrollment_ms:
                stats.pf_ring = other_stats.pf_ring = True
                self._refresh(key, stats)
                self._refresh(other, other_stats)
            if self._find(other) != self._find(key):
                self._union(key, other, kind)
                merged = True
        return merged

    def _observe_cluster(self, rec: LinkRecord, qualified_before: bool, named_before: bool,
                         link: bool = True) -> dict | None:
        key = rec.api_key_id
        suspicious = rec.style >= self.min_style
        if not suspicious and key not in self._keys and not rec.payment_fingerprint:
            return None  # ordinary traffic is not tracked, but for the payment rings
        stats = self._touch_key(key, rec.ts_ms, suspicious, min(1.0, max(0.0, rec.style)))
        stats.key_events = max(stats.key_events, rec.key_events if rec.key_events > 0 else stats.key_events + 1)
        stats.account = rec.account_id
        if rec.source_offset >= 0:
            stats.source = (rec.source_partition, rec.source_offset)
        if rec.output_tokens >= 0:
            stats.ring_tokens += rec.output_tokens
            stats.ring_reported += 1
        if stats.extracting:
            if stats.account_age_ms is None and rec.account_created_ms is not None:
                stats.account_age_ms = max(0, rec.ts_ms - rec.account_created_ms)
            if rec.output_tokens >= 0:
                stats.output_tokens += rec.output_tokens
                stats.reported += 1
            if 0 <= rec.topic_bucket < 256:
                stats.topics |= 1 << (rec.topic_bucket >> 2)
        self._refresh(key, stats)
        merged = False
        if link:
            for value in self.values_to_link(rec):
                if self._refresh_links.due(key, value, rec.ts_ms):
                    merged |= self._join(key, stats, value[0], self._link(value, key, rec.ts_ms))
        root = self._find(key)
        # An alerted cluster is re-scored only when its membership may have changed, or when
        # an update naming new members is waiting for its interval.
        if (root in self._alerted and root not in self._pending and not merged
                and qualified_before == self._qualifies(stats) and named_before == self._named(stats)):
            return None
        return self._score(root, rec.ts_ms)

    def _refresh(self, key: str, stats: _KeyStats) -> None:
        """Re-judge one key after its stats changed and move its share of its cluster's totals."""
        core, named, ring = self._qualifies(stats), self._named(stats), self._ring_member(stats)
        events, suspicious = (stats.events, stats.suspicious) if core else (0, 0)
        ring_events = stats.key_events if ring else 0
        root = self._find(key)
        totals = self._totals.setdefault(root, [0] * _TOTALS)
        totals[0] += core - stats.core
        totals[1] += events - stats.core_events
        totals[2] += suspicious - stats.core_suspicious
        totals[3] += named - stats.named
        totals[4] += ring - stats.ring
        totals[5] += ring_events - stats.ring_events
        if ring != stats.ring:
            accounts = self._ring_accounts.setdefault(root, {})
            accounts[stats.account] = accounts.get(stats.account, 0) + (1 if ring else -1)
            if accounts[stats.account] <= 0:
                del accounts[stats.account]
        stats.core, stats.named, stats.core_events, stats.core_suspicious = core, named, events, suspicious
        stats.ring, stats.ring_events = ring, ring_events

    @staticmethod
    def _may_be_member(stats: _KeyStats) -> bool:
        # A member must itself look like extraction: a stray event or two (a user who once asked
        # for step-by-step reasoning, a reseller's customer) does not make a key a member, and
        # neither does a key whose answers are short on average (an evaluation run that asks
        # for the letter only harvests nothing, even when its prompts elicit reasoning).
        # (Judged once five answers are in: a lucky long answer or two must not qualify it.)
        if stats.reported and (stats.reported < 5 or stats.output_tokens < MIN_HARVEST_TOKENS * stats.reported):
            return False
        return stats.suspicious >= 3

    @classmethod
    def _qualifies(cls, stats: _KeyStats) -> bool:
        """A member of the core: mostly extraction."""
        return cls._may_be_member(stats) and 2 * stats.suspicious >= stats.events

    def _style_named(self, stats: _KeyStats) -> bool:
        """A member of the core, or a camouflaged member with a few harvested extraction events
        that either sent the sweep's own prompt frames in lockstep with other keys, or whose
        extraction rate is a campaign's although under half its traffic."""
        return self._may_be_member(stats) and (2 * stats.suspicious >= stats.events or stats.in_lockstep
                                               or stats.rate_evidence >= self.member_evidence)

    def _ring_member(self, stats: _KeyStats) -> bool:
        """A payment-ring member: joined by its payment method to a key first seen with it,
        with ``ring_min_key_events`` or more requests whose answers average harvest length
        (150+ output tokens, three answers known at least). Whether the ring spans enough
        accounts is the cluster's test (``_score``): one customer's keys share a card."""
        return (stats.pf_ring and stats.key_events >= self.ring_min_key_events and stats.ring_reported >= 3
                and stats.ring_tokens >= MIN_HARVEST_TOKENS * stats.ring_reported)

    def _named(self, stats: _KeyStats) -> bool:
        """Named in its cluster's alert: by its extraction (``_style_named``) or as a member of a
        payment ring."""
        return self._style_named(stats) or self._ring_member(stats)

    def _incident_id(self, root: str, core: set[str], members: set[str]) -> str:
        """A new incident's id: the hour (``incident_grid_ms``) in which the earliest of its
        core members (of its members, for a payment ring without core) began extracting,
        ``cluster:20260201T0500Z``.

        Not a member key nor a link value: which members are known at the first alert depends
        on how the records of different keys interleave (the input partitions are processed at
        their own pace; a backlog, a kill or a rebalance changes it), so a choice among them
        names one campaign differently in the worker and in replay. dev-s1's link records in
        8 interleavings (``benchmarks/cluster_ids.py``: partition backlogs, random merges, a
        partition behind, a kill), 8 incidents each: the smallest member key (as before) kept
        1-5 of replay's 8 ids, the earliest member key 0-8, the link value shared by most
        members (with its day) 4-6 of 7, and 8 incidents became 5 or 7 (public frames and cards
        are shared by campaigns). A hydra's heads are enrolled together: whichever are known
        first, the earliest began within minutes of the campaign's first head (dev-s1: 0-3,
        once 13 minutes), so its hour is the campaign's: every incident under replay's id, no
        other. Still named apart: a campaign whose first heads straddle the hour; an incident
        whose hour is already open for another cluster (two campaigns that began in the same
        hour; an id is never shared by two open incidents) gets its earliest member's key
        appended.
        """
        earliest = min(core or members, key=lambda k: (self._keys[k].first_ts, k))
        began = self._keys[earliest].first_ts // self.incident_grid_ms * self.incident_grid_ms
        alert_id = "cluster:" + datetime.fromtimestamp(began / 1000, timezone.utc).strftime("%Y%m%dT%H%MZ")
        if any(other[0] == alert_id for other_root, other in self._alerted.items() if other_root != root):
            alert_id += f"-{earliest}"
        return alert_id

    def _score(self, root: str, ts_ms: int) -> dict | None:
        linked = self._members.get(root, {root})
        if len(linked) < self.min_keys:
            return None
        n_core, events, suspicious, n_named, n_ring, ring_events = self._totals.get(root, _NO_TOTALS)
        previous = self._alerted.get(root)
        if not events and previous is not None:
            # An open incident whose core has left (its heads turned to ordinary traffic):
            # its share is that of everything its named members sent.
            named = [self._keys[k] for k in linked if k in self._keys and self._keys[k].named]
            events, suspicious = sum(s.events for s in named), sum(s.suspicious for s in named)
        share = suspicious / events if events else 0.0
        # The gates open an incident; an open one keeps naming members that join it even when
        # its core's share sinks (camouflaged members joining late), until it is evicted.
        extracting = n_core >= self.min_keys and suspicious >= self.min_events and share >= self.min_share
        ring_accounts = len(self._ring_accounts.get(root, ()))
        paying_together = (n_ring >= self.min_keys and ring_events >= self.min_events
                           and ring_accounts >= self.ring_min_accounts)
        if previous is None and not (extracting or paying_together):
            return None
        # Critical takes extraction: a payment ring alone (no extraction-style prompts) is a
        # warning, for a human to look at what its keys ask.
        rank = 3 if n_named >= 4 * self.min_keys and (extracting or previous is not None and previous[2] == 3) else 2
        now = max(ts_ms, self._clock)
        if previous is not None:
            alert_id, size, old_rank, updated = previous
            # Re-send (an update of the same incident, never a new page) to name new members:
            # at once when the cluster grew by ``regrow`` or escalated, else at most every
            # ``update_interval_ms`` of event time.
            grown = n_named >= size * self.regrow or rank > old_rank
            due = n_named > size and now - updated >= self.update_interval_ms
            if not (grown or due):
                if n_named > size:
                    self._pending.add(root)
                    due = updated + self.update_interval_ms
                    self._next_update_ms = due if not self._next_update_ms else min(self._next_update_ms, due)
                return None
            self._pending.discard(root)
        # The core (mostly-extraction members) makes the cluster; camouflaged members are named
        # with it but do not dilute the share that decided it. Listed only when alerting.
        keys = self._keys
        core = {k for k in linked if k in keys and keys[k].core}
        named = {k for k in linked if k in keys and keys[k].named and not keys[k].core}
        camouflaged = {k for k in named if self._style_named(keys[k])}
        paying = named - camouflaged  # named as payment-ring members only
        members = core | named
        stats = [self._keys[k] for k in core] + [self._keys[k] for k in named]
        events += sum(self._keys[k].events for k in named)
        if previous is None:
            alert_id = self._incident_id(root, core, members)
        self._alerted[root] = (alert_id, len(members), max(rank, previous[2] if previous else 0), now)
        spans = [s.last_ts - s.first_ts for s in stats]
        # A hydra splits one sweep: each head covers a little of its topics, together they
        # cover them all; and its heads were enrolled together.
        joint_topics, member_topics = 0, []
        for s in stats:
            joint_topics |= s.topics
            member_topics.append(s.topics.bit_count())
        joint, one_member = joint_topics.bit_count(), sorted(member_topics)[len(member_topics) // 2]
        firsts = [s.first_ts for s in stats]
        # The score: the joint extraction share, scaled by size, and by how much of the joint
        # coverage one member's is not (a split sweep scores near full; keys that each
        # sweep everything, linked by a shared frame, lose up to a quarter).
        split = 1.0 - one_member / joint if joint else 1.0
        score = share * (1.0 - 1.0 / max(1, n_named)) * (0.75 + 0.25 * split)
        if paying_together:
            # at the warning level (0.65) with three accounts, a little more for each further one
            score = max(score, min(0.79, 0.62 + 0.01 * ring_accounts))
        score = round(min(1.0, score), 4)
        return {
            "schema": "distill.alert.v1",
            "alert_id": alert_id,
            "ts": _iso(ts_ms),
            "entity_type": "cluster",
            "entity_id": alert_id.split(":", 1)[1],
            "api_key_ids": sorted(members),
            "score": score,
            "severity": Severity.of_rank(rank).value,
            "reasons": [
                {"signal": "cluster_keys", "value": len(members), "baseline": 1, "weight": 1.0},
                {"signal": "joint_extraction_style_share", "value": round(share, 3), "baseline": 0.05,
                 "weight": 1.0},
                {"signal": "joint_extraction_events", "value": suspicious, "baseline": None, "weight": 0.5},
                {"signal": "camouflaged_members", "value": len(camouflaged), "baseline": 0, "weight": None},
                {"signal": "payment_ring_members", "value": len(paying), "baseline": 0, "weight": None},
                {"signal": "accounts_sharing_a_payment_method", "value": ring_accounts, "baseline": 1,
                 "weight": None},
                {"signal": "median_key_active_minutes", "value": round(sorted(spans)[len(spans) // 2] / 60000, 1),
                 "baseline": None, "weight": None},
                {"signal": "joint_topic_coverage", "value": round(joint / 64, 3),
                 "baseline": round(one_member / 64, 3), "weight": None},
                {"signal": "members_enrolled_within_minutes", "value": round((max(firsts) - min(firsts)) / 60000, 1),
                 "baseline": None, "weight": None},
                {"signal": "median_account_age_days", "value": _median_age_days(stats), "baseline": None,
                 "weight": None},
                {"signal": "linked_by", "value": _describe_evidence(self._evidence.get(root, {})), "baseline": None,
                 "weight": None},
            ],
            "events_seen": events,
            "detector": self.detector,
        }


_CONTENT_KINDS = frozenset({"head", "tail"})
_TOTALS = 6  # the per-root running totals (ClusterDetector._totals)
_NO_TOTALS = (0,) * _TOTALS
_EVIDENCE_NAMES = {"pf": "shared payment fingerprint", "acct": "same account", "net": "shared IP prefix",
                   "head": "same opening frame in lockstep", "tail": "same closing frame in lockstep",
                   "asnua": "same ASN and user agent in lockstep"}


def _median_age_days(stats: list[_KeyStats]) -> float | None:
    ages = sorted(s.account_age_ms for s in stats if s.account_age_ms is not None)
    return round(ages[len(ages) // 2] / 86_400_000, 1) if ages else None


def _describe_evidence(evidence: dict[str, int]) -> str:
    """'shared payment fingerprint x12, same opening frame in lockstep x40' (most joins first)."""
    parts = sorted(evidence.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{_EVIDENCE_NAMES.get(kind, kind)} x{n}" for kind, n in parts)
