"""The rhythm of a key's requests."""
from __future__ import annotations

import math

from .base import KeySignal


class InterArrivalTiming(KeySignal):
    """Exponentially weighted mean and variance of the log gap (seconds, at least 1)
    between a key's requests, by event time (``x["ts_ms"]``).

    People come and go in sessions (a wide spread of gaps); a script fires on a clock (a
    narrow one). ``level`` is that regularity: 1 / (1 + standard deviation of the log gap).
    An out-of-order event does not wind the key's clock back. ``score_one`` is the
    regularity the key would have with the event's gap learned (0.0 for its first event: no
    gap yet): a request on a clock the key keeps scores near 1.

    Parameters
    ----------
    alpha
        Weight of each new gap.
    prior_var
        The variance of the log gap a key starts from at its first gap (1.0: regularity 0.5).

    Examples
    --------
    >>> import random
    >>> cron, person, rng, t = InterArrivalTiming(alpha=0.1), InterArrivalTiming(alpha=0.1), random.Random(1), 0
    >>> for i in range(200):
    ...     cron.learn_one({"ts_ms": i * 10_000})  # every 10 s
    ...     t += int(rng.expovariate(1 / 600) * 1000)  # about every 10 minutes, at random
    ...     person.learn_one({"ts_ms": t})
    >>> round(math.exp(cron.gap_mean)), cron.level > 0.9 > person.level
    (10, True)
    >>> cron.score_one({"ts_ms": 200 * 10_000}) > 0.9 > cron.score_one({"ts_ms": 199 * 10_000 + 3_600_000})
    True
    """

    state_fields = ("n", "last_ts", "gap_mean", "gap_var")

    def __init__(self, alpha: float = 0.03, prior_var: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.prior_var = prior_var
        self.last_ts = 0.0
        self.gap_mean = 0.0
        self.gap_var = 0.0

    @property
    def level(self) -> float:
        return regularity(self.gap_var)

    def score_one(self, x: dict) -> float:
        if not self.n:
            return 0.0
        return regularity(self._learned(x.get("ts_ms", self.last_ts))[1])

    def _learned(self, ts: float) -> tuple[float, float]:
        """(gap_mean, gap_var) with the gap up to ``ts`` learned."""
        if self.n == 1:
            # The first gap seeds the mean (from 0, the mean's slow climb to the key's rhythm
            # read as spread for a hundred events) and the spread starts at the prior: a key's
            # rhythm is unknown (regularity 0.5) until its gaps show it.
            return math.log(max(1.0, (ts - self.last_ts) / 1000.0)), self.prior_var
        delta = math.log(max(1.0, (ts - self.last_ts) / 1000.0)) - self.gap_mean
        return self.gap_mean + self.alpha * delta, (1 - self.alpha) * (self.gap_var + self.alpha * delta * delta)

    def learn_one(self, x: dict) -> None:
        ts = x.get("ts_ms", self.last_ts)
        if self.n:
            self.gap_mean, self.gap_var = self._learned(ts)
        self.last_ts = max(self.last_ts, ts)
        self.n += 1


def regularity(gap_var: float) -> float:
    """1 / (1 + standard deviation of the log gap): 1 for a clock, under 0.5 for people."""
    return 1.0 / (1.0 + math.sqrt(max(0.0, gap_var)))
