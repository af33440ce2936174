"""Scoring a cluster and the alerts the cluster detector sends (``distill.alert.v1``).

The detector (``detector.py``) decides when a cluster is scored and alerted; what it found
is handed over as :class:`ClusterFindings`, and the alert is built here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ...contracts.alert import Alert, Severity
from ...contracts.alert import iso_ms as _iso  # the one time format of every record
from ..constants import BASE_EXTRACTION_RATE, DAY_MS
from ..exculpation import excused_products, product_cap
from .members import KeyStats

EVIDENCE_NAMES = {"pf": "shared payment fingerprint", "acct": "same account", "net": "shared IP prefix",
                  "head": "same opening frame in lockstep", "tail": "same closing frame in lockstep",
                  "asnua": "same ASN and user agent in lockstep"}


@dataclass(slots=True)
class ClusterFindings:
    """What one cluster's alert reports: its members by role and their joint behaviour."""

    core: set[str]  # the mostly-extraction members that make the cluster
    members: set[str]  # every member named: the core and the rest
    camouflaged: set[str]  # named by their extraction, not mostly extraction
    paying: set[str]  # named as payment-ring members only
    stats: list[KeyStats]  # of the members named (core first)
    share: float  # the core's joint extraction-style share
    suspicious: int  # the core's extraction-style events
    events: int  # every named member's events
    n_named: int  # named members as the cluster's running totals count them
    ring_accounts: int  # accounts of its payment-ring members
    paying_together: bool  # it is a payment ring
    evidence: dict[str, int]  # link kind -> joins
    # members left unnamed by a cluster that pages for its other members: their own traffic
    # holds a real product's evidence (their own incidents are info at most on it too)
    excused: set[str] = field(default_factory=set)


def incident_id(began_ms: int, grid_ms: int) -> str:
    """A cluster incident's id: the ``grid_ms`` slot (an hour) in which it began.

    >>> incident_id(1_769_922_000_123, 3_600_000)
    'cluster:20260201T0500Z'
    """
    began = began_ms // grid_ms * grid_ms
    return "cluster:" + datetime.fromtimestamp(began / 1000, timezone.utc).strftime("%Y%m%dT%H%MZ")


def cluster_score(found: ClusterFindings) -> tuple[float, int, int]:
    """The cluster's score, its members' joint topic coverage and one (the median) member's."""
    # A hydra splits one sweep: each head covers a little of its topics, together they
    # cover them all.
    joint_topics, member_topics = 0, []
    for s in found.stats:
        joint_topics |= s.topics
        member_topics.append(s.topics.bit_count())
    joint, one_member = joint_topics.bit_count(), sorted(member_topics)[len(member_topics) // 2]
    # The score: the joint extraction share, scaled by size, and by how much of the joint
    # coverage one member's is not (a split sweep scores near full; keys that each
    # sweep everything, linked by a shared frame, lose up to a quarter).
    split = 1.0 - one_member / joint if joint else 1.0
    score = found.share * (1.0 - 1.0 / max(1, found.n_named)) * (0.75 + 0.25 * split)
    if found.paying_together:
        # at the warning level (0.65) with three accounts, a little more for each further one
        score = max(score, min(0.79, 0.62 + 0.01 * found.ring_accounts))
    return round(min(1.0, score), 4), joint, one_member


def cluster_alert(alert_id: str, ts_ms: int, rank: int, found: ClusterFindings, detector: str,
                  mature_days: float, products_only: bool = False, *, keys_per_account: float) -> dict:
    """The ``entity_type: cluster`` alert of one cluster; info at most when its members are all
    keys of one customer's accounts, each ``mature_days`` old or older (``mature_customer_cap``:
    it is that customer's incident), or all keys whose own traffic holds a real product's
    exculpatory evidence (``products_only``: ``product_cap``)."""
    score, joint, one_member = cluster_score(found)
    capped = (mature_customer_cap(found.stats, mature_days, keys_per_account)
              or product_cap(products_only, len(found.members), sum(1 for s in found.stats if s.product_pending)))
    if capped:
        rank = 1
    spans = [s.last_ts - s.first_ts for s in found.stats]
    firsts = [s.first_ts for s in found.stats]  # a hydra's heads were enrolled together
    return Alert(
        alert_id=alert_id,
        ts=_iso(ts_ms),
        entity_type="cluster",
        entity_id=alert_id.split(":", 1)[1],
        api_key_ids=sorted(found.members),
        score=score,
        severity=Severity.of_rank(rank),
        reasons=[
            {"signal": "cluster_keys", "value": len(found.members), "baseline": 1, "weight": 1.0},
            {"signal": "joint_extraction_style_share", "value": round(found.share, 3),
             "baseline": BASE_EXTRACTION_RATE, "weight": 1.0},
            {"signal": "joint_extraction_events", "value": found.suspicious, "baseline": None, "weight": 0.5},
            {"signal": "camouflaged_members", "value": len(found.camouflaged), "baseline": 0, "weight": None},
            {"signal": "payment_ring_members", "value": len(found.paying), "baseline": 0, "weight": None},
            {"signal": "accounts_sharing_a_payment_method", "value": found.ring_accounts, "baseline": 1,
             "weight": None},
            {"signal": "median_key_active_minutes", "value": round(sorted(spans)[len(spans) // 2] / 60000, 1),
             "baseline": None, "weight": None},
            {"signal": "joint_topic_coverage", "value": round(joint / 64, 3),
             "baseline": round(one_member / 64, 3), "weight": None},
            {"signal": "members_enrolled_within_minutes", "value": round((max(firsts) - min(firsts)) / 60000, 1),
             "baseline": None, "weight": None},
            {"signal": "median_account_age_days", "value": median_age_days(found.stats), "baseline": None,
             "weight": None},
            {"signal": "linked_by", "value": describe_evidence(found.evidence), "baseline": None,
             "weight": None},
        ] + excused_products(found.excused) + capped,
        events_seen=found.events,
        detector=detector,
    ).to_dict()


def account_alert(account_id: str, ts_ms: int, keys: set[str], events_seen: int, account_min_keys: int,
                  detector: str, account_age_days: float | None, mature_days: float) -> dict:
    """The ``entity_type: account`` alert of an account holding many extraction-like keys;
    info at most for an account ``mature_days`` old or older (``ClusterConfig.mature_account_days``)."""
    capped = mature_account_cap(account_age_days, mature_days)
    if capped:
        severity = Severity.INFO
    else:
        severity = Severity.CRITICAL if len(keys) >= 2 * account_min_keys else Severity.WARNING
    return Alert(
        alert_id=f"account:{account_id}", ts=_iso(ts_ms),
        entity_type="account", entity_id=account_id, api_key_ids=sorted(keys),
        score=round(min(1.0, 1.0 - 1.0 / len(keys)), 4),
        severity=severity,
        reasons=[{"signal": "extraction_keys_in_account", "value": len(keys), "baseline": 1, "weight": 1.0}] + capped,
        events_seen=events_seen,
        detector=detector,
    ).to_dict()


def mature_account_cap(age_days: float | None, mature_days: float,
                       why: str = "one mature account: its keys' own incidents page") -> list[dict]:
    """The reasons that hold one account's incident at info, the account being ``mature_days``
    old or older; [] for a younger account or an unknown age (the incident pages as it scores)."""
    if age_days is None or age_days < mature_days:
        return []
    return [{"signal": "account_age_days", "value": round(age_days, 1), "baseline": mature_days, "weight": None},
            {"signal": "severity_capped", "value": why, "baseline": None, "weight": None}]


def mature_customer_cap(stats: list[KeyStats], mature_days: float, keys_per_account: float) -> list[dict]:
    """The reasons that hold a cluster's incident at info, its keys being one customer's: of one
    account, or of a few accounts holding ``keys_per_account`` of them each on average (a hydra
    enrols an account per head), every account ``mature_days`` old or older by the provider's
    records (the youngest, at any key's first record). [] otherwise, or when an account or an
    age is unknown: the incident pages as it scores. The keys' own incidents page either way.

    >>> from distillguard.models.clusters.members import KeyStats
    >>> old = 400 * DAY_MS
    >>> app = [KeyStats(account=f"a{k % 4}", account_age_ms=old) for k in range(17)]  # 17 keys, 4 accounts
    >>> mature_customer_cap(app, 30.0, 3.0)[-1]["value"]
    "4 mature accounts holding 17 keys: their keys' own incidents page"
    >>> mature_customer_cap([KeyStats(account=f"a{k}", account_age_ms=old) for k in range(17)], 30.0, 3.0)
    []
    """
    accounts = {s.account for s in stats}
    if "" in accounts or any(s.account_age_ms is None for s in stats):
        return []
    if len(accounts) > 1 and len(stats) < keys_per_account * len(accounts):
        return []
    age_days = min(s.account_age_ms for s in stats) / DAY_MS
    if len(accounts) == 1:
        return mature_account_cap(age_days, mature_days)
    return mature_account_cap(age_days, mature_days, f"{len(accounts)} mature accounts holding {len(stats)} keys: "
                                                     "their keys' own incidents page")


def median_age_days(stats: list[KeyStats]) -> float | None:
    ages = sorted(s.account_age_ms for s in stats if s.account_age_ms is not None)
    return round(ages[len(ages) // 2] / DAY_MS, 1) if ages else None


def describe_evidence(evidence: dict[str, int]) -> str:
    """'shared payment fingerprint x12, same opening frame in lockstep x40' (most joins first)."""
    parts = sorted(evidence.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{EVIDENCE_NAMES.get(kind, kind)} x{n}" for kind, n in parts)
