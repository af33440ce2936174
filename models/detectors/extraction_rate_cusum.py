"""Sequential evidence that a key's rate of harvested extraction is a campaign's."""
from __future__ import annotations

from ..constants import (BASE_EXTRACTION_RATE, CAMPAIGN_EXTRACTION_RATE, HARVEST_HI_TOKENS, HARVEST_LO_TOKENS,
                         likelihood_ratios)
from .base import KeySignal, harvested_style


class ExtractionRateCUSUM(KeySignal):
    """One-sided CUSUM (Page 1954) of the key's harvested extraction-style events.

    Is the key's rate of harvested extraction-style prompts nearer ``campaign_rate`` than
    the population's ``base_rate``? Each event adds its log-likelihood ratio; the sum is
    floored at 0 and capped at 2 x ``threshold``, and ``level`` is the sum over that cap
    (the threshold scores 0.5). A campaign diluted with ordinary prompts stays under every
    share threshold but keeps adding evidence; a user's occasional burst of "step by step"
    decays away. A follow-up turn is conversation: it counts as an ordinary prompt.

    ``score_one`` is the event's harvested extraction style in [0, 1] (0 for a follow-up);
    the log-likelihood ratio it adds to the sum is ``llr``.

    Parameters
    ----------
    base_rate
        The population's rate of harvested extraction-style prompts.
    campaign_rate
        The rate this test looks for.
    threshold
        The evidence that scores as the info level (0.5).
    harvest_lo
        Output tokens under which an answer harvests nothing.
    harvest_hi
        Output tokens from which an answer is a full harvest.

    Examples
    --------
    >>> cusum = ExtractionRateCUSUM()
    >>> sweep = {"extraction_style": 1.0, "output_tokens": 900}
    >>> cusum.score_one(sweep), round(cusum.llr(sweep), 3)  # the evidence one such event adds
    (1.0, 1.609)
    >>> for i in range(40):  # one extraction prompt in three, the rest ordinary
    ...     cusum.learn_one(sweep if i % 3 == 0 else {"extraction_style": 0.0})
    >>> cusum.level > 0.5
    True
    """

    state_fields = ("n", "evidence")

    def __init__(self, base_rate: float = BASE_EXTRACTION_RATE, campaign_rate: float = CAMPAIGN_EXTRACTION_RATE,
                 threshold: float = 15.0, harvest_lo: float = HARVEST_LO_TOKENS,
                 harvest_hi: float = HARVEST_HI_TOKENS) -> None:
        super().__init__()
        self.base_rate = base_rate
        self.campaign_rate = campaign_rate
        self.threshold = threshold
        self.harvest_lo = harvest_lo
        self.harvest_hi = harvest_hi
        self._llr_up, self._llr_down = likelihood_ratios(campaign_rate, base_rate)
        self.evidence = 0.0

    @property
    def level(self) -> float:
        return self.evidence / (2.0 * self.threshold)

    def score_one(self, x: dict) -> float:
        return 0.0 if x.get("follow_up") else harvested_style(x, self.harvest_lo, self.harvest_hi)

    def llr(self, x: dict) -> float:
        """The log-likelihood ratio the event adds: campaign rate against base rate."""
        harvested = self.score_one(x)
        return harvested * self._llr_up + (1.0 - harvested) * self._llr_down

    def learn_one(self, x: dict) -> None:
        self.evidence = max(0.0, min(2.0 * self.threshold, self.evidence + self.llr(x)))
        self.n += 1
