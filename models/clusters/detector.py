"""The cluster detector: keys linked into clusters (union-find), clusters judged and alerted.

See the package's docstring (``models/clusters/__init__.py``) for what links keys and what
makes a cluster an incident; hyperparameters in :class:`~.config.ClusterConfig`.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict

from ...contracts.alert import Severity
from ...contracts.link_record import LinkRecord
from ..cohort import CohortDetector
from ..constants import DAY_MS, likelihood_ratios
from ..events import RequestEvent
from ..features import EventFeatures, featurize
from .config import ClusterConfig
from .linking import CONTENT_KINDS, DURABLE, LinkMembers, LinkRefresh, link_step, link_values
from .members import KeyStats, qualifies, ring_member, style_named
from .records import link_record_of
from .scoring import ClusterFindings, account_alert, cluster_alert, incident_id

_ALL_JUDGED = 1 << 62  # a link-values partition with nothing waiting (ClusterDetector.observe_progress)
_TOTALS = 8  # the per-root running totals (ClusterDetector._totals)
_NO_TOTALS = (0,) * _TOTALS


class ClusterDetector:
    """Online linking of keys into clusters and scoring of clusters. Bounded, deterministic.

    ``config`` holds the hyperparameters; keyword ``overrides`` replace single fields of it
    (``ClusterDetector(min_keys=3)``). ``cohort``: the content-cohort detector fed the same
    records (default: one with its defaults).

    ``link_partitions``: the number of link-values partitions whose joins reach this detector
    through :meth:`observe_join` (the workers' partitioned stage; 0: values linked here). Each
    partition judges its values at its own pace, so one part of a hydra can be joined (by its
    network, its frames) before the joins of another partition (its shared card) bridge it to
    the rest: opened at once, it paged as a second incident. A new incident then waits until
    every partition has reported (:meth:`observe_progress`) judging the values sent up to its
    members' last event; an incident already open is updated at once, as before.
    """

    detector = "distillguard.cluster/0.1"

    def __init__(self, config: ClusterConfig | None = None, *, cohort: CohortDetector | None = None,
                 link_partitions: int = 0, **overrides) -> None:
        self.config = c = dataclasses.replace(config or ClusterConfig(), **overrides)
        # link-values partition -> the event time up to which it judged every value sent (-1:
        # not reported yet); the slowest of them, and the new incidents waiting for it (root ->
        # the event time their members' values must be judged to).
        self._progress = [-1] * link_partitions
        self._judged_to = -1
        self._held: dict[str, int] = {}
        # Content cohorts (keys linked by nothing but the item set they split): learned from
        # the same link records, their incidents sent with this detector's.
        self.cohort = cohort if cohort is not None else CohortDetector()
        self.cohort.is_linked = self._named_in_cluster
        self._refresh_links = LinkRefresh(c.link_refresh_ms, c.max_keys)
        self._llr_up, self._llr_down = likelihood_ratios(c.campaign_rate, c.base_rate)
        self._links: OrderedDict[tuple[str, object], LinkMembers] = OrderedDict()
        self._keys: OrderedDict[str, KeyStats] = OrderedDict()
        self._parent: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        # root -> (alert id, members named so far, severity rank, event time of the last update,
        # whether a version was raised above info: the rank is the cluster's own, before the
        # caps of cluster_alert, which an update can lift while it stays the same)
        self._alerted: dict[str, tuple[str, int, int, int, bool]] = {}
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
        parent = self._parent.get(key, key)
        if parent == key or self._parent.get(parent, parent) == parent:
            return parent  # a root, or a root's direct member (most keys): no walk, nothing to compress
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
        held = self._held.pop(rb, None)
        if held is not None and ra not in self._alerted:
            self._held[ra] = max(held, self._held.get(ra, held))  # (joined an open incident: an update)
        if rb in self._alerted:
            absorbed = self._alerted.pop(rb)
            kept = self._alerted.get(ra)
            # Two open incidents merging go on as the one with the smaller id, i.e. the one
            # whose campaign began first (ids sort by that hour): whichever was found first
            # or is larger, the worker and replay then keep the same one.
            if kept is None or absorbed[0] < kept[0]:
                kept, absorbed = absorbed, kept
            # (raised above info if either was: on-call heard of it)
            self._alerted[ra] = kept if absorbed is None else kept[:4] + (kept[4] or absorbed[4],)
        return ra

    def _enrolled_together(self, a: str, b: str) -> bool:
        """Whether keys ``a`` and ``b`` began extracting within ``enrollment_window_ms`` of
        each other (what a weak link needs to join them). An evicted key joins nothing."""
        sa, sb = self._keys.get(a), self._keys.get(b)
        return sa is not None and sb is not None and abs(sa.first_ts - sb.first_ts) <= self.config.enrollment_window_ms

    def _in_cluster(self, key: str) -> bool:
        """In a cluster of ``min_keys`` or more keys (linked by infrastructure or frames)."""
        return len(self._members.get(self._find(key), ())) >= self.config.min_keys

    def _named_in_cluster(self, key: str) -> bool:
        """Named in a cluster incident raised (what the content cohorts leave to that incident:
        one campaign, one incident to act on). A key linked into a cluster that never pages, or
        whose incident does not name it, is still a cohort candidate: content-cohort lost five
        members of one cohort to a cluster that never raised one."""
        stats = self._keys.get(key)
        return stats is not None and stats.named and self._find(key) in self._alerted and self._in_cluster(key)

    def cluster_of(self, key: str) -> set[str]:
        return set(self._members.get(self._find(key), {key}))

    # -- bookkeeping -----------------------------------------------------------------------
    def _new_key(self, key: str, ts: int, from_join: bool = False) -> KeyStats:
        """A key first seen at ``ts`` (its first record, or a join naming it); the table stays bounded."""
        stats = self._keys[key] = KeyStats(first_ts=ts, seen_ts=ts, last_ts=ts, from_join=from_join)
        if len(self._keys) > self.config.max_keys:
            self._evict_key()
        return stats

    def _touch_key(self, key: str, ts: int, suspicious: bool, style: float = 0.0) -> KeyStats:
        stats = self._keys.get(key)
        if stats is None:
            stats = self._new_key(key, ts)
        else:
            self._keys.move_to_end(key)
            if stats.from_join:
                stats.first_ts = stats.seen_ts = ts
                stats.from_join = False
        stats.last_ts = ts
        if suspicious and not stats.extracting:
            stats.extracting, stats.first_ts = True, ts
        if stats.extracting:
            # Its behaviour as an extraction member counts from its first extraction event on
            # (the records sampled before it, for the payment rings, do not dilute its share).
            stats.events += 1
            stats.suspicious += int(suspicious)
            llr = style * self._llr_up + (1.0 - style) * self._llr_down
            stats.rate_evidence = max(0.0, min(4.0 * self.config.member_evidence, stats.rate_evidence + llr))
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
        self._held.pop(root, None)
        self._evidence.pop(root, None)
        self._totals.pop(root, None)
        self._ring_accounts.pop(root, None)
        self._pending.discard(root)

    def values_to_link(self, rec: LinkRecord) -> list[tuple[str, object]]:
        """The link values one record offers: every kind for an extraction-style event; for an
        ordinary one only its payment method (what a payment ring is made of)."""
        if rec.cohort_only:
            return []
        if rec.style >= self.config.min_style:
            return link_values(rec)
        return [("pf", rec.payment_fingerprint)] if rec.payment_fingerprint else []

    def _link(self, kind_value: tuple[str, object], key: str, ts: int) -> list[str]:
        """Add ``key`` to a link value; returns the keys it now links ``key`` with."""
        link = self._links.get(kind_value)
        if link is None:
            link = self._links[kind_value] = LinkMembers(first_ts=ts)
            if len(self._links) > self.config.max_links:
                self._links.popitem(last=False)
        else:
            self._links.move_to_end(kind_value)
        if kind_value[0] in DURABLE:
            known = self._keys.__contains__
        else:
            def known(other: str) -> bool:
                return other in self._keys and self._enrolled_together(key, other)
        return link_step(link, kind_value[0], key, ts, window_ms=self.config.window_ms,
                         min_coordinated=self.config.min_coordinated, max_members=self.config.max_members, known=known)

    # -- the step ---------------------------------------------------------------------------
    def observe(self, event: RequestEvent, features: EventFeatures | None = None) -> list[dict]:
        return self.observe_link(link_record_of(event, features or featurize(event)))

    def observe_link(self, rec: LinkRecord, *, link: bool = True) -> list[dict]:
        """Learn one link record; returns the cluster / account alerts it raises or updates.

        ``link=False``: learn the key's behaviour only; its link values are judged elsewhere
        (the workers' partitioned link-values stage) and arrive through :meth:`observe_join`.
        """
        if rec.cohort_only:
            # One of a mature key's first requests, for the cohort detector only: the links and
            # key statistics here learn what they learned before it was forwarded.
            return self.cohort.learn_one(rec, linked=self._named_in_cluster(rec.api_key_id)) if link else []
        stats_before = self._keys.get(rec.api_key_id)
        if stats_before is not None and rec.source_offset >= 0:
            partition, offset = stats_before.source
            if rec.source_partition == partition and rec.source_offset <= offset:
                return []  # sent again for an event re-applied upstream: learned already
        self._clock = max(self._clock, rec.ts_ms)
        # (stats.core and stats.named are the predicates' values as of the key's last _refresh,
        # which follows every change of its stats: read, not judged again, per record)
        qualified_before = stats_before is not None and stats_before.core
        named_before = stats_before is not None and stats_before.named
        unexcused_before = stats_before is not None and stats_before.unexcused
        alerts = [a for a in (self._observe_cluster(rec, qualified_before, named_before, unexcused_before, link),)
                  if a is not None]
        if link:
            # Content cohorts are keys in no infrastructure cluster: known here only when this
            # detector links (replay, the cluster agent by default). With the partitioned
            # link-values stage a key's joins arrive after its records, and a hydra's young
            # heads made a cohort incident that replay does not raise: not done there.
            alerts.extend(self.cohort.learn_one(rec, linked=self._named_in_cluster(rec.api_key_id)))
        alerts.extend(self._due_updates(self._clock))
        stats = self._keys.get(rec.api_key_id)
        if stats is not None and not qualified_before and stats.core:
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
            due = self._alerted[root][3] + self.config.update_interval_ms if root in self._alerted else ts_ms
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
        if len(self._accounts) > self.config.max_keys:
            self._accounts.pop(next(iter(self._accounts)))
        if len(keys) < self.config.account_min_keys:
            return None
        named = self._account_alerted.get(rec.account_id, 0)
        if named and len(keys) < named * self.config.regrow:
            return None
        self._account_alerted[rec.account_id] = len(keys)
        age_days = None if rec.account_created_ms is None else (rec.ts_ms - rec.account_created_ms) / DAY_MS
        return account_alert(rec.account_id, rec.ts_ms, keys, sum(self._keys[k].events for k in keys if k in self._keys),
                             self.config.account_min_keys, self.detector, age_days, self.config.mature_account_days)

    def observe_join(self, kind: str, key: str, others: list[str], ts_ms: int,
                     others_ts: list[int] | None = None) -> list[dict]:
        """One link value joined ``key`` with ``others`` (from the partitioned link-values
        stage; ``others_ts``: when each of them last joined the value); returns the cluster
        alert it raises or updates, if any."""
        # A join can come before the records of the keys it names: in a worker the records go
        # to the links topic at the flush tick, the link values at once, and under load a whole
        # sweep's joins come first. Dropped, those keys stayed unlinked (the link value is sent
        # again only after link_refresh_ms of event time). They are known from the join on,
        # enrolled when they joined the value (their own records' times; guessing the join's
        # time for the others joined hydras hours apart by a shared frame): an other whose time
        # the join does not carry stays unknown until a later join names it.
        stats = self._keys.get(key) or self._new_key(key, ts_ms, from_join=True)
        for other, other_ts in zip(others, others_ts or ()):
            if other not in self._keys:
                self._new_key(other, other_ts, from_join=True)
        self._clock = max(self._clock, ts_ms)
        before = stats.named
        merged = self._join(key, stats, kind, others)
        root = self._find(key)
        alerts = []
        if not (root in self._alerted and root not in self._pending and not merged and before == stats.named):
            alert = self._score(root, ts_ms)
            if alert is not None:
                alerts.append(alert)
        # (a join carries event time on as a record does: the last thing the cluster agent sees
        # of a sweep may be joins, and updates waiting for their interval are due on any)
        alerts.extend(self._due_updates(self._clock))
        return alerts


    def _join(self, key: str, stats: KeyStats, kind: str, others) -> bool:
        merged = False
        for other in others:
            other_stats = self._keys.get(other)
            if other_stats is None:
                continue
            if kind not in DURABLE and not self._enrolled_together(key, other):
                continue
            if kind in CONTENT_KINDS and not (stats.in_lockstep and other_stats.in_lockstep):
                stats.in_lockstep = other_stats.in_lockstep = True
                self._refresh(key, stats)
                self._refresh(other, other_stats)
            if kind == "pf" and not (stats.pf_ring and other_stats.pf_ring) and \
                    abs(stats.seen_ts - other_stats.seen_ts) <= self.config.ring_enrollment_ms:
                stats.pf_ring = other_stats.pf_ring = True
                self._refresh(key, stats)
                self._refresh(other, other_stats)
            if self._find(other) != self._find(key):
                self._union(key, other, kind)
                merged = True
        return merged

    def _observe_cluster(self, rec: LinkRecord, qualified_before: bool, named_before: bool, unexcused_before: bool,
                         link: bool = True) -> dict | None:
        key = rec.api_key_id
        suspicious = rec.style >= self.config.min_style
        if not suspicious and key not in self._keys and not rec.payment_fingerprint:
            return None  # ordinary traffic is not tracked, but for the payment rings
        stats = self._touch_key(key, rec.ts_ms, suspicious, min(1.0, max(0.0, rec.style)))
        stats.key_events = max(stats.key_events, rec.key_events if rec.key_events > 0 else stats.key_events + 1)
        stats.account = rec.account_id
        stats.product = rec.product
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
        # An alerted cluster is re-scored only when its membership may have changed, when an
        # update naming new members is waiting for its interval, or when a member's product
        # evidence came or went (it may lift the info cap: exculpation.product_cap).
        if (root in self._alerted and root not in self._pending and not merged
                and qualified_before == stats.core and named_before == stats.named
                and unexcused_before == stats.unexcused):
            return None
        return self._score(root, rec.ts_ms)

    def _refresh(self, key: str, stats: KeyStats) -> None:
        """Re-judge one key after its stats changed and move its share of its cluster's totals."""
        core, ring = qualifies(stats), ring_member(stats, self.config)
        named = ring or style_named(stats, self.config)  # (members.named, its ring test not run twice)
        events, suspicious = (stats.events, stats.suspicious) if core else (0, 0)
        ring_events = stats.key_events if ring else 0
        unexcused = named and not stats.product
        shown = named and stats.product_shown
        root = self._find(key)
        totals = self._totals.setdefault(root, [0] * _TOTALS)
        totals[0] += core - stats.core
        totals[1] += events - stats.core_events
        totals[2] += suspicious - stats.core_suspicious
        totals[3] += named - stats.named
        totals[4] += ring - stats.ring
        totals[5] += ring_events - stats.ring_events
        totals[6] += unexcused - stats.unexcused
        totals[7] += shown - stats.shown
        if ring != stats.ring:
            accounts = self._ring_accounts.setdefault(root, {})
            accounts[stats.account] = accounts.get(stats.account, 0) + (1 if ring else -1)
            if accounts[stats.account] <= 0:
                del accounts[stats.account]
        stats.core, stats.named, stats.core_events, stats.core_suspicious = core, named, events, suspicious
        stats.ring, stats.ring_events, stats.unexcused, stats.shown = ring, ring_events, unexcused, shown

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
        alert_id = incident_id(self._keys[earliest].first_ts, self.config.incident_grid_ms)
        if any(other[0] == alert_id for other_root, other in self._alerted.items() if other_root != root):
            alert_id += f"-{earliest}"
        return alert_id

    def _score(self, root: str, ts_ms: int) -> dict | None:
        """The cluster's alert, when it opens an incident or updates one; else None."""
        c = self.config
        linked = self._members.get(root, {root})
        if len(linked) < c.min_keys:
            return None
        n_core, events, suspicious, n_named, n_ring, ring_events, unexcused, shown = self._totals.get(root, _NO_TOTALS)
        previous = self._alerted.get(root)
        if not events and previous is not None:
            # An open incident whose core has left (its heads turned to ordinary traffic):
            # its share is that of everything its named members sent.
            named = [self._keys[k] for k in linked if k in self._keys and self._keys[k].named]
            events, suspicious = sum(s.events for s in named), sum(s.suspicious for s in named)
        share = suspicious / events if events else 0.0
        # The gates open an incident; an open one keeps naming members that join it even when
        # its core's share sinks (camouflaged members joining late), until it is evicted.
        extracting = n_core >= c.min_keys and suspicious >= c.min_events and share >= c.min_share
        ring_accounts = len(self._ring_accounts.get(root, ()))
        paying_together = (n_ring >= c.min_keys and ring_events >= c.min_events
                           and ring_accounts >= c.ring_min_accounts)
        if previous is None and not (extracting or paying_together):
            return None
        if previous is None and self._progress and not self._judged(root, linked):
            return None
        # Critical takes extraction: a payment ring alone (no extraction-style prompts) is a
        # warning, for a human to look at what its keys ask.
        rank = 3 if n_named >= 4 * c.min_keys and (extracting or previous is not None and previous[2] == 3) else 2
        # Every member named is a real product by its own traffic (exculpation.product_cap): info.
        # Judged here, before an update is due, so that a member turning (its records lose
        # the evidence) escalates the incident at once, as any rise in rank does.
        # Not once the incident was raised above info: on-call was paged for it, and its update
        # would be an exculpated detection, recorded but not sent (contracts.alert.is_exculpated).
        products_only = n_named > 0 and unexcused <= 0 and (previous is None or not previous[4])
        if products_only:
            # An evaluation's pending evidence is one company's (one account re-running its set):
            # pending evaluations of several accounts in one cluster are a hydra on verified
            # accounts, and excuse none of it.
            evaluations = {self._keys[k].account for k in linked
                           if k in self._keys and self._keys[k].named and self._keys[k].evaluation_pending}
            products_only = len(evaluations) <= 1
        if products_only:
            rank = 1
        elif previous is not None and shown >= n_named > 0:
            # Raised for members without a product's evidence, every member named now shows one
            # (a hydra's heads running agent loops are pending agents as a coding agent is): it
            # has nobody to name who is not a product's, and an update would name them all,
            # products included (stress-agent-harvest +1000: three coding agents at warning).
            # The incident stays as last sent until a member's evidence fails.
            return None
        now = max(ts_ms, self._clock)
        # The members its alert lists: a paging cluster leaves out those showing a product's
        # evidence (_findings; some member without it is left here: an incident all of whose
        # members show it returned above, a new one is products_only or has a member without it).
        # Compared with the count its last alert listed: counted with them, every record of a
        # cluster with excused members looked like growth and re-sent the alert (dev-s1: one
        # incident sent 144 times instead of 31).
        listed = n_named if products_only else n_named - shown
        if previous is not None and not self._update_due(root, previous, listed, rank, now):
            return None
        found = self._findings(root, linked, share, suspicious, events, n_named, ring_accounts, paying_together,
                               excuse_products=not products_only)
        alert_id = previous[0] if previous is not None else self._incident_id(root, found.core, found.members)
        alert = cluster_alert(alert_id, ts_ms, rank, found, self.detector, c.mature_account_days, products_only,
                              keys_per_account=c.mature_customer_keys_per_account)
        raised = alert["severity"] != Severity.INFO or (previous is not None and previous[4])
        self._alerted[root] = (alert_id, len(found.members), max(rank, previous[2] if previous else 0), now, raised)
        return alert

    def _judged(self, root: str, linked: set[str]) -> bool:
        """Whether every link-values partition has judged the values sent up to the last event
        of this new incident's members as of when it first qualified (then it opens), or it has
        waited ``stage_hold_max_ms`` of event time for a partition that never reports."""
        held = self._held.get(root)
        if held is None:
            held = self._held[root] = max((self._keys[k].last_ts for k in linked if k in self._keys), default=0)
        if self._waiting(held):
            return False
        del self._held[root]
        return True

    def _waiting(self, held: int) -> bool:
        """Whether a new incident held at event time ``held`` still waits: some partition has not
        judged that far, and it has not waited ``stage_hold_max_ms`` yet."""
        return held > self._judged_to and self._clock - held < self.config.stage_hold_max_ms

    @property
    def held_incidents(self) -> int:
        """New incidents waiting for the link-values partitions (``link_partitions``)."""
        return len(self._held)

    def observe_progress(self, partition: int, judged_to: int | None) -> list[dict]:
        """Link-values partition ``partition`` has judged every value sent up to event time
        ``judged_to`` (None: every value sent, its senders all caught up with their input); its
        joins came before this. Returns the incidents that were waiting for it."""
        if not 0 <= partition < len(self._progress):
            return []
        self._progress[partition] = judged_to
        self._judged_to = min(_ALL_JUDGED if p is None else p for p in self._progress)
        alerts = []
        for root, held in list(self._held.items()):
            if not self._waiting(held):
                alert = self._score(root, held)
                self._held.pop(root, None)  # (opened, or no longer an incident: judged afresh if it is again)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def _update_due(self, root: str, previous: tuple[str, int, int, int, bool], n_named: int, rank: int, now: int) -> bool:
        """Whether an alerted cluster is re-sent now (an update of the same incident, never a
        new page) to name new members: at once when it grew by ``regrow`` or escalated, else at
        most every ``update_interval_ms`` of event time (then pending until it falls due)."""
        _, size, old_rank, updated, _ = previous
        grown = n_named >= size * self.config.regrow or rank > old_rank
        due = n_named > size and now - updated >= self.config.update_interval_ms
        if not (grown or due):
            if n_named > size:
                self._pending.add(root)
                due = updated + self.config.update_interval_ms
                self._next_update_ms = due if not self._next_update_ms else min(self._next_update_ms, due)
            return False
        self._pending.discard(root)
        return True

    def _findings(self, root: str, linked: set[str], share: float, suspicious: int, events: int, n_named: int,
                  ring_accounts: int, paying_together: bool, excuse_products: bool = False) -> ClusterFindings:
        """The cluster's members by role, for its alert. ``excuse_products``: a cluster that
        pages for its other members does not name those whose own traffic shows a real
        product's evidence, held or pending (``KeyStats.product_shown``,
        ``exculpation.excused_products``), unless none would be left."""
        # The core (mostly-extraction members) makes the cluster; camouflaged members are named
        # with it but do not dilute the share that decided it. Listed only when alerting.
        keys = self._keys
        core = {k for k in linked if k in keys and keys[k].core}
        named = {k for k in linked if k in keys and keys[k].named and not keys[k].core}
        camouflaged = {k for k in named if style_named(keys[k], self.config)}
        paying = named - camouflaged  # named as payment-ring members only
        # (what the cluster is, its accounts and ages, is judged on every member, excused or not)
        stats = [keys[k] for k in core] + [keys[k] for k in named]
        events += sum(keys[k].events for k in named)
        excused = {k for k in core | named if keys[k].product_shown} if excuse_products else set()
        if excused and excused != core | named:
            core, camouflaged, paying = core - excused, camouflaged - excused, paying - excused
            named -= excused
        else:
            excused = set()
        return ClusterFindings(core, core | named, camouflaged, paying, stats, share, suspicious, events, n_named,
                               ring_accounts, paying_together, self._evidence.get(root, {}), excused)
