"""The population's level of each per-key signal, learned online: what alert baselines say.

An alert's reasons compare the key with what is normal. "Normal" is learned from the traffic
itself: the median of each signal over the keys seen (a P² estimate, ``river.stats.Quantile``),
each key sampled when its event count reaches a multiple of ``every`` from ``min_events`` on,
so that a busy key does not outweigh the rest and a key's first few events (its signals not
yet settled) do not count. Until ``min_samples`` samples are in, the built-in prior is used.

It only explains scores; it never changes one: a campaign that floods the population cannot
raise the bar it is measured against, and replay and the workers score alike (each worker
learns from its own partitions, which hold a random share of the keys).

>>> population = PopulationProfile(("share",), min_samples=3)
>>> population.baseline("share", prior=0.05)  # nothing learned yet: the prior
0.05
>>> for i in range(300):  # most keys at 0-4 %, one in ten extracting
...     population.learn_one({"share": 0.9 if i % 10 == 0 else (i % 5) / 100})
>>> 0.01 <= population.baseline("share", prior=0.05) <= 0.03
True
"""
from __future__ import annotations

from river import stats


class PopulationProfile:
    """Per signal, the median over sampled keys. Bounded: one P² estimator per signal."""

    def __init__(self, signals: tuple[str, ...], min_samples: int = 100) -> None:
        self.signals = signals
        self.min_samples = min_samples
        self.samples = 0
        self._median = {name: stats.Quantile(0.5) for name in signals}

    def learn_one(self, levels: dict) -> None:
        for name in self.signals:
            self._median[name].update(float(levels[name]))
        self.samples += 1

    def baseline(self, signal: str, prior: float) -> float:
        """The population's median of ``signal``, or ``prior`` until enough keys were seen."""
        if self.samples < self.min_samples:
            return prior
        value = self._median[signal].get()
        return prior if value is None else value


class PopulationSamples(PopulationProfile):
    """A profile that keeps the samples it is given (``taken``) instead of learning them, for a
    process that scores only a share of the keys and leaves the population to another
    (``distillguard replay --jobs``): that one learns every process's samples in the input's
    order, and so states the baselines one process would. Its own baselines stay the priors.

    >>> samples = PopulationSamples(("share",), min_samples=1)
    >>> samples.learn_one({"share": 0.5}); samples.taken, samples.baseline("share", prior=0.05)
    ([{'share': 0.5}], 0.05)
    """

    def __init__(self, signals: tuple[str, ...], min_samples: int = 100) -> None:
        super().__init__(signals, min_samples)
        self.taken: list[dict] = []

    def learn_one(self, levels: dict) -> None:
        self.taken.append(levels)
