"""The cluster detector's hyperparameters, in one typed object (:class:`ClusterConfig`)."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ..constants import BASE_EXTRACTION_RATE, CAMPAIGN_EXTRACTION_RATE, LINK_MIN_STYLE

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """What links keys, what makes a cluster an incident, and the detector's bounds.

    >>> ClusterConfig(min_keys=3).min_keys, ClusterConfig().window_ms
    (3, 3600000)
    >>> ClusterConfig(min_style=0.2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    distillguard.errors.ConfigError: cluster min_style 0.2 is under LINK_MIN_STYLE (0.5): ...
    """

    # -- linking -------------------------------------------------------------------------------
    # An event of this extraction style or more creates links (ordinary traffic behind one
    # NAT, a reseller or a templated app does not cluster). Not below LINK_MIN_STYLE:
    # records under it are built without their link values (records.link_record_of).
    min_style: float = LINK_MIN_STYLE
    # Weak links (frames, ASN + UA) join keys only when min_coordinated keys used the value
    # within window_ms (lockstep); a value shared by more than max_members keys stops linking.
    window_ms: int = HOUR_MS
    min_coordinated: int = 4
    max_members: int = 256
    # Every link kind but a payment method or an account joins two keys only when they
    # began extracting within this of each other (pairwise; a cluster grows by chains of
    # such pairs, so a hydra enrolled gradually stays one). A hydra's heads are enrolled
    # together. Without it, a long-running campaign using the same public prompt frames,
    # or the IP prefix of a shared proxy pool, chained every campaign of a week into one
    # incident (dev-s1: one 733-key incident of 37 campaigns). 2 h, not 1: camouflaged
    # heads show their first extraction prompt late (dev-s1: 74 min after the others).
    enrollment_window_ms: int = 2 * HOUR_MS
    # A (key, link value) pair is linked again at most once per this of event time.
    link_refresh_ms: int = 600_000

    # -- members -------------------------------------------------------------------------------
    # A camouflaged member mixes ordinary prompts into its share of the sweep, so it is
    # also named once its sequential evidence (the per-key detector's test, on the events
    # seen here: base_rate against campaign_rate) reaches member_evidence: about half the
    # level that pages a lone key, because being linked to the cluster's core is evidence too.
    member_evidence: float = 8.0
    base_rate: float = BASE_EXTRACTION_RATE
    campaign_rate: float = CAMPAIGN_EXTRACTION_RATE

    # -- incidents -----------------------------------------------------------------------------
    # A cluster incident opens with min_keys core members, min_events of their events of
    # extraction style, at a joint share of min_share or more.
    min_keys: int = 5
    min_events: int = 60
    min_share: float = 0.6
    # An open incident is re-sent at once when it grew by regrow, else at most every
    # update_interval_ms of event time while members are waiting to be named.
    regrow: float = 1.1
    update_interval_ms: int = 600_000
    # A cluster incident is named after the hour its earliest core member began extracting
    # (see ClusterDetector._incident_id): wider, two campaigns more often begin in one;
    # narrower, a campaign whose first heads are known in another order straddles a boundary more often.
    incident_grid_ms: int = HOUR_MS
    # An account holding this many extraction-like keys raises an account alert.
    account_min_keys: int = 3
    # An account this old by the provider's own records (``account_created_ms``, not a client's
    # claim) is an established customer, not one enrolled for a campaign: an account incident of
    # its keys, or a cluster incident whose members are all its keys, raises info at most. Its
    # keys' own incidents still page when one extracts (a turned key is caught as ``turned``).
    # A product running several keys under one account (a homework-help app per region and
    # platform: stress-product-negatives-b) was paged at critical by its account's incident
    # before any key had sent enough to show its product evidence. Same age as the products'
    # (models.products ``min_account_age_days``).
    mature_account_days: float = 30.0
    # A few mature accounts holding this many of a cluster's keys each, on average, are one
    # customer's (a product run from an account per region or platform: the homework-help app of
    # stress-product-negatives-b+2000, 17 keys in 4 accounts, was linked across them by its
    # wrapper in lockstep and paged at warning). A hydra enrols an account per head, 1-2 keys
    # each, aged accounts or not: its cluster still pages.
    mature_customer_keys_per_account: float = 3.0
    # With the workers' partitioned link-values stage, a new incident waits until every
    # link-values partition has judged the values its members sent (ClusterDetector's
    # link_partitions); at most this much event time, should a partition never report.
    stage_hold_max_ms: int = 6 * HOUR_MS

    # -- payment rings -------------------------------------------------------------------------
    # A payment ring: keys of ring_min_accounts or more accounts paying with one payment
    # method, each first seen within ring_enrollment_ms of another (dev streams: a
    # hydra's heads on one card within 1-24 minutes), each with ring_min_key_events or
    # more requests answered at harvest length (a point of link_record's sample, 1, 2,
    # 4, 8, ...: what the detector knows of a key's count). No extraction style needed:
    # hydras that word their prompts as plain instructions still pay. Four, not eight: a
    # hydra that read the old bar sends seven requests a head (stress-attack-shift: 51 heads
    # of 5-7 requests on the named heads' cards went unnamed); the ring's own bars (accounts,
    # enrolment within minutes, harvest-length answers) are what keeps one customer out.
    ring_min_accounts: int = 3
    ring_min_key_events: int = 4
    ring_enrollment_ms: int = 1_800_000

    # -- bounds --------------------------------------------------------------------------------
    max_links: int = 100_000  # link values remembered
    max_keys: int = 200_000  # keys tracked (and accounts, and (key, value) pairs refreshed)

    def __post_init__(self) -> None:
        if self.min_style < LINK_MIN_STYLE:
            raise ConfigError(f"cluster min_style {self.min_style} is under LINK_MIN_STYLE ({LINK_MIN_STYLE}): "
                              "link records of such events carry no link values (models/constants.py)")
