"""What the cluster detector knows of one key (:class:`KeyStats`) and what makes it a member."""
from __future__ import annotations

from dataclasses import dataclass

from ..constants import MIN_HARVEST_TOKENS, ProductStatus
from ..exculpation import PENDING, shows_product
from .config import ClusterConfig


@dataclass(slots=True)
class KeyStats:
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
    # Known from a join (the link-values stage) before any record of it: its first record
    # sets first_ts and seen_ts, which the join could only estimate.
    from_join: bool = False
    key_events: int = 0  # the key's own count of its events (records are a sample of them)
    ring_tokens: int = 0
    ring_reported: int = 0
    account: str = ""
    pf_ring: bool = False  # joined by its payment method to a key enrolled with it
    ring: bool = False  # a member of a payment ring (see ring_member)
    ring_events: int = 0
    # What its latest record said of its traffic's real-product evidence (LinkRecord.product,
    # a ProductStatus): a cluster of such keys only is held at info (exculpation.product_cap).
    product: int = 0
    unexcused: bool = False  # counted in its cluster's totals as named without that evidence
    shown: bool = False  # counted in its cluster's totals as named with a product's evidence shown

    @property
    def product_shown(self) -> bool:
        """Its own traffic holds a real product's evidence, or an app's or agent's pending
        (exculpation.SHOWN)."""
        return shows_product(self.product)

    @property
    def product_pending(self) -> bool:
        """Its product evidence is pending (an app's or an evaluation's)."""
        return self.product in PENDING

    @property
    def evaluation_pending(self) -> bool:
        """An evaluation's evidence is pending: it excuses a cluster only as one account's."""
        return self.product == ProductStatus.EVALUATION_PENDING


def may_be_member(stats: KeyStats) -> bool:
    # A member must itself look like extraction: a stray event or two (a user who once asked
    # for step-by-step reasoning, a reseller's customer) does not make a key a member, and
    # neither does a key whose answers are short on average (an evaluation run that asks
    # for the letter only harvests nothing, even when its prompts elicit reasoning).
    # (Judged once five answers are in: a lucky long answer or two must not qualify it.)
    if stats.reported and (stats.reported < 5 or stats.output_tokens < MIN_HARVEST_TOKENS * stats.reported):
        return False
    return stats.suspicious >= 3


def qualifies(stats: KeyStats) -> bool:
    """A member of the core: mostly extraction."""
    return may_be_member(stats) and 2 * stats.suspicious >= stats.events


def style_named(stats: KeyStats, config: ClusterConfig) -> bool:
    """A member of the core, or a camouflaged member with a few harvested extraction events
    that either sent the sweep's own prompt frames in lockstep with other keys, or whose
    extraction rate is a campaign's although under half its traffic."""
    return may_be_member(stats) and (2 * stats.suspicious >= stats.events or stats.in_lockstep
                                     or stats.rate_evidence >= config.member_evidence)


def ring_member(stats: KeyStats, config: ClusterConfig) -> bool:
    """A payment-ring member: joined by its payment method to a key first seen with it,
    with ``ring_min_key_events`` or more requests whose answers average harvest length
    (``MIN_HARVEST_TOKENS``+ output tokens, three answers known at least). Whether the ring
    spans enough accounts is the cluster's test (``ClusterDetector._score``): one customer's
    keys share a card."""
    return (stats.pf_ring and stats.key_events >= config.ring_min_key_events and stats.ring_reported >= 3
            and stats.ring_tokens >= MIN_HARVEST_TOKENS * stats.ring_reported)


def named(stats: KeyStats, config: ClusterConfig) -> bool:
    """Named in its cluster's alert: by its extraction (``style_named``) or as a member of a
    payment ring."""
    return style_named(stats, config) or ring_member(stats, config)
