"""InterArrivalTiming: a key's rhythm is known from its first few dozen gaps."""
from __future__ import annotations

import math
import random

from distillguard.models.detectors import InterArrivalTiming


def timing(gaps_s) -> InterArrivalTiming:
    detector, ts = InterArrivalTiming(), 1_769_904_000_000
    for gap in gaps_s:
        ts += int(gap * 1000)
        detector.learn_one({"ts_ms": ts})
    return detector


def test_a_script_reads_as_regular_within_forty_requests_and_a_person_does_not():
    rng = random.Random(1)
    # every 30 s give or take 20 %: the first gap seeds the key's rhythm, so a slow script is
    # not read as irregular while its mean climbs from zero
    assert timing([30 * rng.uniform(0.8, 1.2) for _ in range(40)]).level > 0.6
    # a person: gaps at random around 5 minutes
    assert timing([rng.expovariate(1 / 300) for _ in range(40)]).level < 0.5


def test_the_first_gap_seeds_the_rhythm_and_the_spread_starts_unknown():
    detector = timing([0, 12])  # the first event, then a 12 s gap
    assert round(detector.gap_mean, 6) == round(math.log(12), 6)
    assert detector.level == 0.5  # prior_var 1.0
