"""Constants of the detection model, each written once: what several detectors must agree on.

A number here is a judgment about the threat (how long an answer must be to be worth
distilling, how often ordinary keys send extraction-style prompts), shared by the per-key
detectors (``pipeline.py``, ``detectors/``), the cluster detector (``clusters/``) and the
content cohorts (``cohort.py``). A detector's own tuning stays in its ``__init__``; these are
the defaults they take, so that changing one changes it everywhere it means the same.

>>> up, down = likelihood_ratios(CAMPAIGN_EXTRACTION_RATE, BASE_EXTRACTION_RATE)
>>> round(up, 3), round(down, 3)  # the evidence one extraction-style event adds, one ordinary event takes
(1.609, -0.236)
"""
from __future__ import annotations

import math
from enum import IntEnum

# -- time ---------------------------------------------------------------------------------------
DAY_MS = 86_400_000  # event times are epoch milliseconds

# -- answer lengths (output tokens) ------------------------------------------------------------
# The harvest ramp of one answer: under HARVEST_LO_TOKENS it carries no reasoning worth
# distilling (a letter, a label, a number), from HARVEST_HI_TOKENS on it is a full harvest.
HARVEST_LO_TOKENS = 100.0
HARVEST_HI_TOKENS = 300.0
# Output tokens below which one answer harvests little, as a hard cut (a member of a
# cluster or a content cohort must average at least this).
MIN_HARVEST_TOKENS = 150
# An ordinary answer is this long or shorter; a long one (a worked solution, a reasoning
# trace kept) this long or longer. A benchmark-format prompt answered past the ordinary
# length was answered with its reasoning (features.answered_style).
ORDINARY_ANSWER_TOKENS = 400.0
LONG_ANSWER_TOKENS = 800.0

# -- links between keys ----------------------------------------------------------------------
# An event of this extraction style (as harvested) or more links its key to others by its
# infrastructure and prompt frames (ClusterConfig.min_style); below it, its link record
# carries no link values (they are not computed: nothing reads them).
LINK_MIN_STYLE = 0.5

# -- rates of extraction-style events ----------------------------------------------------------
# The population's rate of harvested extraction-style prompts, and the rate a campaign's
# sequential test looks for (per-key CUSUM and cluster members' rate evidence alike).
BASE_EXTRACTION_RATE = 0.05
CAMPAIGN_EXTRACTION_RATE = 0.25


def likelihood_ratios(rate: float, base_rate: float) -> tuple[float, float]:
    """The log-likelihood ratios of one Bernoulli observation, ``rate`` against ``base_rate``:
    what a hit adds to a sequential test and what a miss adds (negative)."""
    return math.log(rate / base_rate), math.log((1.0 - rate) / (1.0 - base_rate))


class ProductStatus(IntEnum):
    """What a key's own traffic says of a real product's exculpatory evidence as of its latest
    event (``StepResult.product``, carried on ``LinkRecord.product`` to the cluster detector;
    an int on the wire)."""
    NONE = 0
    HOLDS = 1  # an app's, an evaluation's, an agent's or a transformation service's evidence holds
    PENDING = 2  # an app's or an agent's evidence is pending (bias-corrected, not yet held)
    EVALUATION_PENDING = 3  # an evaluation's first run, its re-run not yet seen: a harvest's traffic so far
    # An organisation's key on a mature account whose first requests each opened a conversation
    # of its own: an app's first users, before any could reply. Pending for a cluster's member;
    # no excuse in a content cohort, whose item sweep opens a conversation per item too
    # (stress-attack-shift: a proxy hydra's heads of 5-8 requests on aged organisation accounts).
    FIRST_USERS_PENDING = 4
