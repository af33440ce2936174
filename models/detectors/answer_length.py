"""How long a key's answers typically are."""
from __future__ import annotations

import math

from ..constants import LONG_ANSWER_TOKENS, ORDINARY_ANSWER_TOKENS
from .base import KeySignal


class AnswerLength(KeySignal):
    """Exponentially weighted mean of the log of each answer's ``x["output_tokens"]`` (a
    geometric mean: one huge answer does not make a key's answers long).

    A harvest collects long answers: worked solutions, reasoning a reasoning model returns
    unasked. ``OutputYield`` saturates at a few hundred tokens, where ordinary chat answers
    already are; this tells a key whose typical answer is ``long_tokens`` or more from one
    whose typical answer is ``ordinary_tokens`` or less. ``level`` ramps between them on a
    log scale. Refused requests (0 tokens) and unknown usage (absent or -1) are not learned.

    Parameters
    ----------
    alpha
        Weight of each new answer.
    ordinary_tokens
        A typical answer this long or shorter scores 0.
    long_tokens
        A typical answer this long or longer scores 1.

    Examples
    --------
    >>> length = AnswerLength(alpha=0.5)
    >>> for tokens in (1600, 0, -1, 1600):
    ...     length.learn_one({"output_tokens": tokens})
    >>> round(length.typical_tokens), length.level, length.n
    (1600, 1.0, 2)
    >>> length.learn_one({"output_tokens": 100})
    >>> round(length.typical_tokens), round(length.level, 2)
    (400, 0.0)
    """

    state_fields = ("n", "log_mean")

    def __init__(self, alpha: float = 0.03, ordinary_tokens: float = ORDINARY_ANSWER_TOKENS,
                 long_tokens: float = LONG_ANSWER_TOKENS) -> None:
        super().__init__()
        self.alpha = alpha
        self.ordinary_tokens = ordinary_tokens
        self.long_tokens = long_tokens
        self.log_mean = 0.0

    @property
    def typical_tokens(self) -> float:
        return math.exp(self.log_mean) if self.n else 0.0

    @property
    def level(self) -> float:
        if not self.n:
            return 0.0
        ramp = (self.log_mean - math.log(self.ordinary_tokens)) / math.log(self.long_tokens / self.ordinary_tokens)
        return max(0.0, min(1.0, ramp))

    def score_one(self, x: dict) -> float:
        """The answer's length on the same ramp (the key's current level without usage)."""
        out = x.get("output_tokens", -1)
        if out <= 0:
            return self.level
        ramp = math.log(out / self.ordinary_tokens) / math.log(self.long_tokens / self.ordinary_tokens)
        return max(0.0, min(1.0, ramp))

    def learn_one(self, x: dict) -> None:
        out = x.get("output_tokens", -1)
        if out <= 0:
            return
        self.log_mean = self._ew(self.log_mean, math.log(out))
        self.n += 1
