"""Share of a key's requests that ask for a very large answer."""
from __future__ import annotations

from .base import EWShare


class LargeOutputBudget(EWShare):
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

    def __init__(self, alpha: float = 0.03, min_tokens: int = 16000) -> None:
        super().__init__(alpha)
        self.min_tokens = min_tokens

    def score_one(self, x: dict) -> float:
        return float(x.get("max_tokens", 0) >= self.min_tokens)
