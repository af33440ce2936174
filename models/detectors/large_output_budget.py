"""Share of a key's requests that ask for a very large answer."""
from __future__ import annotations

from .base import KeySignal


class LargeOutputBudget(KeySignal):
    """Exponentially weighted share of requests whose ``x["max_tokens"]`` is at least
    ``min_tokens``: a harvest of long reasoning traces asks for room to write them.

    Parameters
    ----------
    alpha
        Weight of each new event.
    min_tokens
        The output budget that counts as very large.

    Examples
    --------
    >>> budget = LargeOutputBudget(alpha=0.5)
    >>> for max_tokens in (32000, 512):
    ...     budget.learn_one({"max_tokens": max_tokens})
    >>> budget.level, budget.score_one({"max_tokens": 16000})
    (0.5, 1.0)
    """

    state_fields = ("n", "share")

    def __init__(self, alpha: float = 0.03, min_tokens: int = 16000) -> None:
        super().__init__()
        self.alpha = alpha
        self.min_tokens = min_tokens
        self.share = 0.0

    @property
    def level(self) -> float:
        return self.share

    def score_one(self, x: dict) -> float:
        return float(x.get("max_tokens", 0) >= self.min_tokens)

    def learn_one(self, x: dict) -> None:
        self.share = self._ew(self.share, self.score_one(x))
        self.n += 1
