"""How new each prompt's content is against the key's recent prompts."""
from __future__ import annotations

from .base import KeySignal


class TopicNovelty(KeySignal):
    """Exponentially weighted novelty of each prompt's content sketch.

    An event's novelty is the Hamming distance of its 64-bit SimHash (``x["simhash"]``)
    to the nearest of the key's last ``ring`` sketches, over 32 (then capped at 1): a
    person asks about a few home topics, a capability sweep moves on with every prompt.

    Parameters
    ----------
    alpha
        Weight of each new event.
    ring
        How many recent sketches are kept (the state holds them).

    Examples
    --------
    >>> novelty = TopicNovelty(alpha=0.5, ring=4)
    >>> novelty.score_one({"simhash": 0xFF})  # nothing seen yet: entirely new
    1.0
    >>> novelty.learn_one({"simhash": 0xFF})
    >>> novelty.score_one({"simhash": 0xFF}), novelty.score_one({"simhash": 0xFF << 16})
    (0.0, 0.5)
    """

    state_fields = ("n", "novelty", "sketches")

    def __init__(self, alpha: float = 0.03, ring: int = 8) -> None:
        super().__init__()
        self.alpha = alpha
        self.ring = ring
        self.novelty = 0.0
        self.sketches = [0] * ring

    @property
    def level(self) -> float:
        return self.novelty

    def score_one(self, x: dict) -> float:
        simhash = x.get("simhash", 0)
        return min(1.0, min(((simhash ^ s).bit_count() for s in self.sketches if s), default=32) / 32.0)

    def learn_one(self, x: dict) -> None:
        self.novelty = self._ew(self.novelty, self.score_one(x))
        self.sketches[self.n % self.ring] = x.get("simhash", 0)
        self.n += 1
