"""How long a key's prompts typically are: an item's few words, or a conversation's paragraph."""
from __future__ import annotations

import math

from .base import KeySignal


class PromptLength(KeySignal):
    """Exponentially weighted mean of ``log(1 + x["prompt_tokens"])`` (a geometric mean: one
    pasted document does not make a key's prompts long). ``prompt_tokens``: the input tokens
    of the request's own prompt when the pipeline sets it (a new item sent as a turn of a
    conversation whose history it resends: the item alone, ``ConversationClaims.prompt_tokens``),
    else ``input_tokens``.

    A sweep of free-form items sends each item bare: "Give a synonym of 'sober'." is a dozen
    input tokens in any language, and what it collects is the answer, many times longer. A
    developer's scripts and a person's working sessions send context with each request (code,
    a document, the previous turn). Input tokens are the provider's count, not a claim of the
    client, and they mean the same across scripts (CJK has no words to count). ``level`` ramps
    from 1 at ``item_tokens`` or fewer to 0 at ``context_tokens`` or more, on a log scale; the
    pipeline weighs the typical prompt against the typical answer (``AnswerLength``). Unknown
    usage (absent, -1 or 0) is not learned; ``log_mean`` is 0.0 until a prompt was (every
    learned value is above 0).

    Parameters
    ----------
    alpha
        Weight of each new prompt.
    item_tokens
        A typical prompt this short or shorter scores 1.
    context_tokens
        A typical prompt this long or longer scores 0.

    Examples
    --------
    >>> length = PromptLength(alpha=0.5)
    >>> for tokens in (-1, 11, 0, 11):
    ...     length.learn_one({"input_tokens": tokens})
    >>> round(length.typical_tokens), length.level
    (11, 1.0)
    >>> length.learn_one({"input_tokens": 400})
    >>> round(length.typical_tokens), length.level
    (68, 0.0)
    >>> PromptLength().level  # nothing learned
    0.0
    """

    state_fields = ("n", "log_mean")

    def __init__(self, alpha: float = 0.03, item_tokens: float = 16.0, context_tokens: float = 32.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.item_tokens = item_tokens
        self.context_tokens = context_tokens
        self.log_mean = 0.0

    @property
    def typical_tokens(self) -> float:
        return math.exp(self.log_mean) - 1.0 if self.log_mean else 0.0

    @property
    def level(self) -> float:
        if not self.log_mean:
            return 0.0
        ramp = (math.log(1.0 + self.context_tokens) - self.log_mean) / math.log(
            (1.0 + self.context_tokens) / (1.0 + self.item_tokens))
        return max(0.0, min(1.0, ramp))

    def score_one(self, x: dict) -> float:
        """The prompt's terseness on the same ramp (the key's current level without usage)."""
        tokens = x.get("input_tokens", -1) or -1
        if tokens <= 0:
            return self.level
        ramp = math.log((1.0 + self.context_tokens) / (1.0 + tokens)) / math.log(
            (1.0 + self.context_tokens) / (1.0 + self.item_tokens))
        return max(0.0, min(1.0, ramp))

    def learn_one(self, x: dict) -> None:
        tokens = x.get("prompt_tokens", x.get("input_tokens", -1)) or -1
        if tokens > 0:
            value = math.log(1.0 + tokens)
            # seeded by the key's first prompt with usage (not its first event: that may have none)
            self.log_mean = value if not self.log_mean else (1.0 - self.alpha) * self.log_mean + self.alpha * value
        self.n += 1
