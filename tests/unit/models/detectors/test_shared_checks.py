"""Shared checks run over every per-key signal detector (``distillguard.models.detectors``).

River's own estimator checks (``river.checks.common``: params, clone, repr, pickling, purity,
emerging and disappearing features, inference before any learn) on a stream of real feature
dicts, plus what the workers rely on: the state round-trips through ``get_state`` /
``set_state`` into another instance (a key moving to another worker), ``score_one`` does
not learn, and every level stays in [0, 1] whatever features come.
"""
from __future__ import annotations

import copy
import math
import pickle
import random

import pytest
from river.checks import common

from distillguard.models import detectors
from distillguard.models.features import featurize_text
from distillguard.models.pipeline import signal_inputs

DETECTORS = [getattr(detectors, name) for name in detectors.__all__
             if name[0].isupper() and name not in ("KeySignal", "EWShare")]  # (the two bases)

PROMPTS = ["Think step by step and show all your reasoning: what is 17 * 23?",
           "What's a good pasta recipe for two?", "Rate the following response on a scale of 1 to 10: ...",
           "(A) 4 (B) 5 (C) 6 (D) 7. Which is prime? Answer with the letter only.",
           "can you explain that again, more simply?", "Generate 20 diverse questions about thermodynamics."]


def stream(n: int = 60, seed: int = 7, extra: bool = True) -> list[dict]:
    """Feature dicts of a key's events (as the pipeline builds them), one in three with an
    unrelated numeric feature, as River's checks want: detectors must ignore what they do
    not know."""
    rng = random.Random(seed)
    out, ts = [], 1_769_904_000_000
    for i in range(n):
        f = featurize_text(rng.choice(PROMPTS), output_tokens=rng.choice([-1, 3, 150, 900]))
        ts += rng.randint(1_000, 600_000)
        x = dict(signal_inputs(f), ts_ms=ts, follow_up=rng.random() < 0.2, max_tokens=rng.choice([0, 512, 32000]))
        if extra and i % 3 == 0:
            x["unrelated"] = rng.random()
        out.append(x)
    return out


RIVER_CHECKS = [common.check_repr, common.check_str, common.check_tags, common.check_clone_same_class,
                common.check_clone_is_idempotent, common.check_init_has_default_params_for_tests,
                common.check_init_default_params_are_not_mutable, common.check_doc,
                common.check_clone_changes_memory_addresses, common.check_mutate_can_be_idempotent,
                common.check_pickling_supports_roundtrip, common.check_repr_roundtrips_clone,
                common.check_clone_with_new_params_applies, common.check_get_params_matches_signature]
RIVER_DATASET_CHECKS = [common.check_learn_one, common.check_pickling, common.check_shuffle_features_no_impact,
                        common.check_emerging_features, common.check_disappearing_features,
                        common.check_predict_one_pure, common.check_predict_one_before_any_learn,
                        common.check_no_state_aliasing_with_input, common.check_clone_is_independent]


def test_every_detector_is_checked():
    assert len(DETECTORS) == 13 and all(issubclass(d, detectors.KeySignal) for d in DETECTORS)


@pytest.mark.parametrize("check", RIVER_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_river_estimator_checks(detector, check):
    check(detector())


@pytest.mark.parametrize("check", RIVER_DATASET_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_river_checks_on_a_key_stream(detector, check):
    check(detector(), [(x, None) for x in stream()])


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_score_before_first_learn_and_on_unseen_features(detector):
    fresh = detector()
    for x in (stream(1)[0], {}, {"something_else": 1.0}):
        score = fresh.score_one(x)
        assert isinstance(score, float) and math.isfinite(score)
        assert 0.0 <= fresh.level <= 1.0
    fresh.learn_one({})  # an event with none of its features learns as neutral, never raises
    assert 0.0 <= fresh.level <= 1.0


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_state_round_trips_into_another_instance(detector):
    events = stream(80)
    original = detector()
    for x in events[:50]:
        original.learn_one(x)
    moved = detector().set_state(copy.deepcopy(original.get_state()))
    pickled = pickle.loads(pickle.dumps(original))
    for x in events[50:]:
        assert moved.score_one(x) == original.score_one(x) == pickled.score_one(x)
        for d in (original, moved, pickled):
            d.learn_one(x)
        assert moved.get_state() == original.get_state() == pickled.get_state()
    assert moved.level == original.level


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_score_one_does_not_learn(detector):
    d = detector()
    for x in stream(20):
        d.learn_one(x)
    before = copy.deepcopy(d.get_state())
    for x in stream(20, seed=8):
        d.score_one(x)
    assert d.get_state() == before


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_level_stays_in_unit_interval_and_state_stays_fixed_size(detector):
    d = detector()
    sizes = set()
    for x in stream(300, seed=9):
        d.learn_one(x)
        assert 0.0 <= d.level <= 1.0
        sizes.add(sum(len(v) if isinstance(v, list) else 1 for v in d.get_state()))
    assert len(sizes) == 1  # bounded: the state never grows with the events learned


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.__name__)
def test_score_one_has_one_meaning_evidence_in_the_unit_interval(detector):
    # (models/detectors/base.py: 0 = what an ordinary key sends, 1 = what a harvest sends)
    d = detector()
    for x in stream(200, seed=11):
        assert 0.0 <= d.score_one(x) <= 1.0
        d.learn_one(x)


def test_score_one_reads_higher_for_what_a_harvest_sends():
    # one direction for every detector: the sweep's event (on the key's clock) scores at least
    # the ordinary one's (a follow-up an hour later)
    sweep = {"extraction_style": 1.0, "output_tokens": 2000, "follow_up": False, "simhash": 0xF0F0_F0F0_F0F0_F0F0,
             "template": 99, "max_tokens": 32000, "ts_ms": 1_769_904_720_000, "conversation": 5, "turn": 4,
             "input_tokens": 10}
    ordinary = {"extraction_style": 0.0, "output_tokens": 150, "follow_up": True, "simhash": 0x0F, "template": 7,
                "max_tokens": 512, "ts_ms": 1_769_904_720_000 + 3_600_000, "conversation": 0, "turn": 0,
                "input_tokens": 10}
    for detector in DETECTORS:
        d = detector()
        for i in range(12):
            d.learn_one(dict(ordinary, ts_ms=1_769_904_000_000 + i * 60_000))
        assert d.score_one(sweep) >= d.score_one(ordinary), detector.__name__
