"""Share of a key's events that are later turns of a conversation."""
from __future__ import annotations

from .base import EWShare


class FollowUpShare(EWShare):
    """Exponentially weighted share of follow-up turns (``x["follow_up"]``).

    People converse: they ask again about the answer they got. A sweep sends one-shot
    prompts, so this share discounts extraction style (a follow-up scores 0 as extraction).

    Parameters
    ----------
    alpha
        Weight of each new event.

    Examples
    --------
    >>> follow_up = FollowUpShare(alpha=0.5)
    >>> for turn in (0, 1, 1):
    ...     follow_up.learn_one({"follow_up": turn > 0})
    >>> follow_up.level
    0.75
    >>> follow_up.score_one({"follow_up": True})
    0.0
    """

    def score_one(self, x: dict) -> float:
        # as evidence of extraction: a one-shot prompt is what a sweep sends
        return 0.0 if x.get("follow_up") else 1.0

    def learn_one(self, x: dict) -> None:
        self.share = self._ew(self.share, 1.0 if x.get("follow_up") else 0.0)
        self.n += 1
