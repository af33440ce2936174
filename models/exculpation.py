"""Why a cross-key incident (a cluster's, a content cohort's) leaves out members, or is held at
info, on its members' own real-product evidence.

Each key's own traffic says whether it is a real product's (``models.products``: an app's
end-user conversations, an agent's steps, an evaluation's re-runs, a transformation service's
templates), carried on its link records as a :class:`~.constants.ProductStatus`. An incident
over several keys follows its members: one all of whose members show the evidence is held at
info (``product_cap``), one that pages for its other members does not name them
(``excused_products``), and a member whose records stop showing it is named at once.
"""
from __future__ import annotations

from typing import AbstractSet

from .constants import ProductStatus

# What a member's latest record may say to be excused from a cluster: the evidence holds, or an
# app's or an agent's is pending (an evaluation's pending is not shown: until its re-run it is a
# harvest's traffic).
SHOWN = frozenset({ProductStatus.HOLDS, ProductStatus.PENDING, ProductStatus.FIRST_USERS_PENDING})
# ... from a content cohort: not an organisation key's first requests each opening a
# conversation of its own, which is what an item sweep's are.
SHOWN_TO_A_COHORT = SHOWN - {ProductStatus.FIRST_USERS_PENDING}
# The statuses whose evidence is pending, not held: counted in a held incident's reasons
# (``product_cap``'s ``pending``) by the cluster and the cohort alike.
PENDING = frozenset({ProductStatus.PENDING, ProductStatus.FIRST_USERS_PENDING, ProductStatus.EVALUATION_PENDING})


def shows_product(status: int, cohort: bool = False) -> bool:
    """Whether a link record's product status excuses its key from a cluster's incident (a
    content ``cohort``'s).

    >>> shows_product(ProductStatus.PENDING), shows_product(ProductStatus.EVALUATION_PENDING)
    (True, False)
    >>> shows_product(ProductStatus.FIRST_USERS_PENDING), shows_product(ProductStatus.FIRST_USERS_PENDING, cohort=True)
    (True, False)
    """
    return status in (SHOWN_TO_A_COHORT if cohort else SHOWN)


def excused_products(excused: AbstractSet[str]) -> list[dict]:
    """The reason that says how many members a paging incident (a cluster's, a content
    cohort's) left unnamed for their own real-product evidence, held or pending ([] when none):
    agent products of several customers
    send the same tool output (a test run's closing line) in lockstep with a harvest's heads
    running the same tools, and were paged with them (stress-agent-harvest: 14 agent keys in a
    critical cluster, most of them named while their evidence was pending; stress-agent-newcomers:
    a coding CLI's developers on new accounts, in one content cohort with the harvest's heads).
    Such a key is still a member: once its records stop carrying the evidence it is named in the
    incident's next update, and its own incident pages as it scores. What the incident is (its
    accounts, ages, joint share, items) is judged on every member.

    >>> excused_products({"k1", "k2"})[0]["value"], excused_products(set())
    (2, [])
    """
    if not excused:
        return []
    return [{"signal": "members_excused_as_products", "value": len(excused), "baseline": 0, "weight": None}]


def product_cap(products_only: bool, members: int, pending: int = 0) -> list[dict]:
    """The reasons that hold a cross-key incident (a cluster's, a content cohort's) at info when
    ``products_only``: every one of its ``members`` named is a key whose own traffic holds a real product's exculpatory
    evidence as of its latest record (``LinkRecord.product``: many consistent end-user
    conversations, or templated transformation, on an account 30+ days old, see
    ``models.products``), or whose evidence is pending (``pending`` of them: an app's
    follow-ups while it counts its first conversations); [] otherwise.

    Apps built on one tutoring template by different customers send the same frame in
    lockstep at the hours students work: the frame links them, and their extraction-style
    wrapper makes them look like a hydra's heads. Each key's incident is already capped at info
    on the same evidence; the cluster's is its members' and follows it. A key that turns
    loses the evidence within a few dozen events: its own incident pages, and so does the
    cluster's at once (``ClusterDetector`` keeps the count of members without the evidence; so
    does ``CohortDetector``).

    >>> product_cap(True, 17)[1]["value"], product_cap(False, 17)
    (17, [])
    >>> [(r["signal"], r["value"]) for r in product_cap(True, 8, pending=6)][1:3]
    [('members_with_product_evidence', 2), ('members_with_evidence_pending', 6)]
    """
    if not products_only:
        return []
    reasons = [{"signal": "exculpatory", "value": "product_members", "baseline": None, "weight": None},
               {"signal": "members_with_product_evidence", "value": members - pending, "baseline": members,
                "weight": None}]
    if pending:
        # on-call reads that the cap waits on evidence still being counted, not on evidence held
        reasons.append({"signal": "members_with_evidence_pending", "value": pending, "baseline": 0, "weight": None})
    why = ("every member's own traffic is a real product's" if not pending else
           "every member's own traffic is a real product's or, for the members pending, an app's follow-ups "
           "or an agent's steps while its first conversations are counted")
    return reasons + [{"signal": "severity_capped", "value": why, "baseline": None, "weight": None}]
