"""Share of a key's prompts that reuse a recent opening frame."""
from __future__ import annotations

from .base import KeySignal


class TemplateRepetition(KeySignal):
    """Exponentially weighted share of prompts whose template fingerprint
    (``x["template"]``, the masked opening frame) is one of the key's last ``ring``.

    An application sends one frame with new material; a sweep over a benchmark sends new
    frames. Repetition narrows the breadth a key's extraction style is weighed by.

    ``score_one`` is 1.0 for a prompt in a frame the key has not used lately (what a sweep
    sends), 0.0 for a repeated one; ``level`` is the share of repeated frames.

    Parameters
    ----------
    alpha
        Weight of each new event.
    ring
        How many recent fingerprints are kept (the state holds them, 32 bits each).

    Examples
    --------
    >>> repetition = TemplateRepetition(alpha=0.5)
    >>> for template in (7, 7, 7):
    ...     repetition.learn_one({"template": template})
    >>> repetition.level
    0.75
    >>> repetition.score_one({"template": 7}), repetition.score_one({"template": 8})
    (0.0, 1.0)
    """

    state_fields = ("n", "repetition", "templates")

    def __init__(self, alpha: float = 0.03, ring: int = 8) -> None:
        super().__init__()
        self.alpha = alpha
        self.ring = ring
        self.repetition = 0.0
        self.templates = [0] * ring

    @property
    def level(self) -> float:
        return self.repetition

    def repeats(self, x: dict) -> bool:
        """Whether the event's frame is one of the key's last ``ring``."""
        return (x.get("template", 0) & 0xFFFF_FFFF) in self.templates

    def score_one(self, x: dict) -> float:
        return 0.0 if self.repeats(x) else 1.0

    def learn_one(self, x: dict) -> None:
        self.repetition = self._ew(self.repetition, 1.0 if self.repeats(x) else 0.0)
        self.templates[self.n % self.ring] = x.get("template", 0) & 0xFFFF_FFFF
        self.n += 1
