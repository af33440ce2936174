"""Share of a key's events that harvest extraction-style answers."""
from __future__ import annotations

from ..constants import HARVEST_HI_TOKENS, HARVEST_LO_TOKENS
from .base import EWShare, harvested_style


class ExtractionShare(EWShare):
    """Exponentially weighted share of extraction-style events, as harvested.

    An event counts by its extraction style (reasoning elicitation, grading, benchmark or
    dataset formats, tool scaffolds: ``x["extraction_style"]`` in [0, 1]) weighed by how
    long its answer was (``x["output_tokens"]``; short answers harvest nothing). The key's
    first event seeds the share.

    Parameters
    ----------
    alpha
        Weight of each new event.
    harvest_lo
        Output tokens under which an answer harvests nothing.
    harvest_hi
        Output tokens from which an answer is a full harvest.

    Examples
    --------
    >>> share = ExtractionShare(alpha=0.5)
    >>> share.score_one({"extraction_style": 1.0, "output_tokens": 800})
    1.0
    >>> for x in ({"extraction_style": 1.0, "output_tokens": 800}, {"extraction_style": 0.0}):
    ...     share.learn_one(x)
    >>> share.level
    0.5
    """

    def __init__(self, alpha: float = 0.03, harvest_lo: float = HARVEST_LO_TOKENS,
                 harvest_hi: float = HARVEST_HI_TOKENS) -> None:
        super().__init__(alpha)
        self.harvest_lo = harvest_lo
        self.harvest_hi = harvest_hi

    def score_one(self, x: dict) -> float:
        return harvested_style(x, self.harvest_lo, self.harvest_hi)
