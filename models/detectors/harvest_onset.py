"""When a key began harvesting long answers: the start of its current run."""
from __future__ import annotations

import math

from ..constants import LONG_ANSWER_TOKENS, ORDINARY_ANSWER_TOKENS, likelihood_ratios
from .base import KeySignal


class HarvestOnset(KeySignal):
    """One-sided CUSUM (Page 1954) of a key's long answers outside real conversation.

    A harvest without wording has no extraction-style run to date it by
    (``ExtractionRateCUSUM``): its alert could not say whether the key harvested from its
    first requests or turned after an ordinary past. This test asks of each event whether
    the key's rate of long answers (``long_tokens`` or more output tokens, ramping up from
    ``ordinary_tokens`` on a log scale; a follow-up turn that holds counts as ordinary) is
    nearer ``harvest_rate`` than an ordinary key's ``base_rate``. The sum is floored at 0
    and capped at ``cap``; its last zero is the estimated onset, ``run_start``: the key's
    events before the run. Unknown usage (absent, -1, or 0 for a refused request) adds
    nothing.

    ``score_one`` is how much the event's answer is a harvest's, in [0, 1] (0 for an
    ordinary answer, a follow-up that holds or unknown usage); the log-likelihood ratio it
    adds is ``llr``. ``level`` is the sum over its cap (scored nowhere: the onset is for the
    alert's account of the key's past, ``key_history``).

    Parameters
    ----------
    base_rate
        An ordinary key's share of long answers.
    harvest_rate
        The share this test looks for.
    cap
        The most evidence kept: a run ends only after about ``cap`` / 0.8 ordinary answers.
    ordinary_tokens
        An answer this long or shorter is ordinary.
    long_tokens
        An answer this long or longer is a full harvest's.

    Examples
    --------
    >>> onset = HarvestOnset()
    >>> for i in range(30):  # ordinary chat first, then long answers
    ...     onset.learn_one({"output_tokens": 200 if i < 20 else 2000})
    >>> onset.run_start, onset.evidence > 0
    (20, True)
    >>> fresh = HarvestOnset()
    >>> for i in range(30):  # long answers from the first request
    ...     fresh.learn_one({"output_tokens": 2000})
    >>> fresh.run_start
    0
    >>> [round(onset.score_one({"output_tokens": t}), 2) for t in (200, 566, 2000, -1)]
    [0.0, 0.5, 1.0, 0.0]
    """

    state_fields = ("n", "evidence", "run_start")

    def __init__(self, base_rate: float = 0.1, harvest_rate: float = 0.6, cap: float = 20.0,
                 ordinary_tokens: float = ORDINARY_ANSWER_TOKENS, long_tokens: float = LONG_ANSWER_TOKENS) -> None:
        super().__init__()
        self.base_rate = base_rate
        self.harvest_rate = harvest_rate
        self.cap = cap
        self.ordinary_tokens = ordinary_tokens
        self.long_tokens = long_tokens
        self._llr_up, self._llr_down = likelihood_ratios(harvest_rate, base_rate)
        self.evidence = 0.0
        self.run_start = 0

    @property
    def level(self) -> float:
        return self.evidence / self.cap

    def score_one(self, x: dict) -> float:
        out = x.get("output_tokens", -1)
        if out <= self.ordinary_tokens or x.get("follow_up"):
            return 0.0
        if out >= self.long_tokens:
            return 1.0
        return math.log(out / self.ordinary_tokens) / math.log(self.long_tokens / self.ordinary_tokens)

    def llr(self, x: dict) -> float:
        """The evidence the event adds (0 when its usage is unknown)."""
        out = x.get("output_tokens", -1)
        if out <= 0:
            return 0.0
        # (runs for every event: the log only for answers between the two lengths)
        if out <= self.ordinary_tokens or x.get("follow_up"):
            return self._llr_down
        if out >= self.long_tokens:
            return self._llr_up
        long = math.log(out / self.ordinary_tokens) / math.log(self.long_tokens / self.ordinary_tokens)
        return long * self._llr_up + (1.0 - long) * self._llr_down

    def learn_one(self, x: dict) -> None:
        evidence = max(0.0, min(self.cap, self.evidence + self.llr(x)))
        if evidence > 0.0 and not self.evidence:
            self.run_start = self.n  # a run begins: the events before it were the key's past
        self.evidence = evidence
        self.n += 1
