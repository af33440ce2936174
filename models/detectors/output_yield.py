"""How much answer a key harvests per request."""
from __future__ import annotations

from .base import KeySignal


class OutputYield(KeySignal):
    """Exponentially weighted output yield: each answer's ``x["output_tokens"]`` over
    ``full_tokens`` (capped at 1), over the events whose usage was reported.

    Distillation collects the model's outputs: a final-answer evaluation or a classifier
    that gets a few tokens back harvests little, however its prompts read. Events without
    usage (absent or -1) are not learned, and score as the key's current yield.

    Parameters
    ----------
    alpha
        Weight of each new answer.
    full_tokens
        Output tokens that count as a full harvest for one request.

    Examples
    --------
    >>> yield_ = OutputYield(alpha=0.5)
    >>> for tokens in (1000, 0, -1):
    ...     yield_.learn_one({"output_tokens": tokens})
    >>> yield_.level, yield_.n
    (0.5, 2)
    """

    state_fields = ("n", "yield_")

    def __init__(self, alpha: float = 0.03, full_tokens: float = 500.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.full_tokens = full_tokens
        self.yield_ = 0.0

    @property
    def level(self) -> float:
        return self.yield_

    def score_one(self, x: dict) -> float:
        out = x.get("output_tokens", -1)
        return min(1.0, out / self.full_tokens) if out >= 0 else self.yield_

    def learn_one(self, x: dict) -> None:
        out = x.get("output_tokens", -1)
        if out < 0:
            return
        self.yield_ = self._ew(self.yield_, min(1.0, out / self.full_tokens))
        self.n += 1
