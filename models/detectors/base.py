"""What every per-key signal detector shares: the contract ``models.pipeline`` drives them by.

Each detector is a River anomaly detector over *one key's* stream of events:

``score_one(x)``
    The event's evidence of a harvest against the key's past, **in [0, 1]**: 0 is what an
    ordinary key sends, 1 what a campaign collecting the model's outputs sends (a new topic,
    a new frame, a long answer, a one-shot prompt, a broken conversation claim, a request on
    the key's clock...). One meaning for every detector, so that scores can be compared and
    shown side by side; what a detector accumulates internally (a log-likelihood ratio, a
    z-score) stays inside ``learn_one``. It never learns.
``learn_one(x)``
    Folds the event into the key's profile (River's score-before-learn: what ``score_one``
    would have said is judged against the past, then learned).
``level``
    The key's signal after what it has learned, in [0, 1]: what the key scorer combines and
    what an alert's reasons show.
``get_state()`` / ``set_state(values)``
    The key's state for this detector, ``state_fields`` in order (plain numbers, or a
    fixed-length list of ints). A worker keeps one detector of each kind and loads a key's
    state into it for each event through these two (``KeyPipeline``'s reference path); the
    values live in the key's fixed-layout record (``models.pipeline``), never pickled, so a
    Faust changelog record stays a few hundred bytes.
"""
from __future__ import annotations

from river import base


class KeySignal(base.AnomalyDetector):
    """A per-key signal: a River anomaly detector whose state is a few numbers."""

    #: the attributes that make up one key's state for this detector
    state_fields: tuple[str, ...] = ("n",)

    def __init__(self) -> None:
        self.n = 0  # events learned

    @property
    def level(self) -> float:
        """The key's signal after what it has learned, in [0, 1]."""
        raise NotImplementedError

    def _ew(self, current: float, value: float) -> float:
        """``current`` (an exponentially weighted mean) with ``value`` learned at weight
        ``self.alpha``; the key's first event seeds it."""
        return value if self.n == 0 else (1.0 - self.alpha) * current + self.alpha * value

    def get_state(self) -> tuple:
        """The key's state for this detector: ``state_fields``' values, in order."""
        return tuple(getattr(self, name) for name in self.state_fields)

    def set_state(self, values) -> KeySignal:
        """Load a key's state (``get_state``'s values, in order); lists are copied."""
        for name, value in zip(self.state_fields, values):
            setattr(self, name, list(value) if isinstance(value, (list, tuple)) else value)
        return self


class EWShare(KeySignal):
    """A per-key share: the exponentially weighted mean of ``score_one`` over the events learned."""

    state_fields = ("n", "share")

    def __init__(self, alpha: float = 0.03) -> None:
        super().__init__()
        self.alpha = alpha
        self.share = 0.0

    @property
    def level(self) -> float:
        return self.share

    def learn_one(self, x: dict) -> None:
        self.share = self._ew(self.share, self.score_one(x))
        self.n += 1


def harvested_share(output_tokens: float, harvest_lo: float, harvest_hi: float) -> float:
    """How much of a harvest one answer of ``output_tokens`` is: 0 under ``harvest_lo`` (a
    letter, a label, a verdict), 1 from ``harvest_hi``, linear between.

    >>> harvested_share(5, 100, 300), harvested_share(200, 100, 300), harvested_share(900, 100, 300)
    (0.0, 0.5, 1.0)
    """
    return max(0.0, min(1.0, (output_tokens - harvest_lo) / (harvest_hi - harvest_lo)))


def harvested_style(x: dict, harvest_lo: float, harvest_hi: float) -> float:
    """The event's extraction style as harvested: an answer under ``harvest_lo`` output
    tokens (a letter, a label, a verdict) collected no reasoning, whatever the prompt asked
    for; one of ``harvest_hi`` or more is a full harvest; unknown usage (absent or -1) is
    neutral (full weight).

    >>> harvested_style({"extraction_style": 1.0, "output_tokens": 5}, 100, 300)
    0.0
    >>> harvested_style({"extraction_style": 1.0, "output_tokens": 200}, 100, 300)
    0.5
    >>> harvested_style({"extraction_style": 1.0}, 100, 300)
    1.0
    """
    # (features absent from x are neutral: River's checks feed unrelated features)
    style = x.get("extraction_style", 0.0)
    out = x.get("output_tokens", -1)
    if out >= 0 and style:
        style *= harvested_share(out, harvest_lo, harvest_hi)
    return style
