"""How new each prompt's content is against the key's recent prompts."""
from __future__ import annotations

from .base import KeySignal


def sketch_novelty(simhash: int, sketches) -> float:
    """How new a prompt's 64-bit SimHash is against ``sketches`` (0 marks an empty slot): the
    Hamming distance to the nearest, over 32, capped at 1 (1.0 when there is none).

    >>> sketch_novelty(0xFF, [0, 0xFF]), sketch_novelty(0xFF << 16, [0xFF]), sketch_novelty(0xFF, [0, 0])
    (0.0, 0.5, 1.0)
    """
    return min(1.0, min(((simhash ^ s).bit_count() for s in sketches if s), default=32) / 32.0)


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
        return sketch_novelty(x.get("simhash", 0), self.sketches)

    def learn_one(self, x: dict) -> None:
        self.novelty = self._ew(self.novelty, self.score_one(x))
        self.sketches[self.n % self.ring] = x.get("simhash", 0)
        self.n += 1
