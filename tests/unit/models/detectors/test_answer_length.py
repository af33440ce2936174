"""AnswerLength: the key's typical (geometric mean) answer length, on a log ramp."""
from __future__ import annotations

import random

from distillguard.models.detectors import AnswerLength


def test_ordinary_answers_score_zero_and_long_ones_one():
    rng = random.Random(3)
    ordinary, harvest = AnswerLength(), AnswerLength()
    for _ in range(300):
        ordinary.learn_one({"output_tokens": int(300 * rng.lognormvariate(0, 0.7))})
        harvest.learn_one({"output_tokens": int(1500 * rng.lognormvariate(0, 0.7))})
    assert ordinary.level < 0.2 and harvest.level == 1.0


def test_one_huge_answer_does_not_make_a_key_long_winded():
    length = AnswerLength(alpha=0.03)
    for i in range(200):
        length.learn_one({"output_tokens": 30_000 if i == 100 else 200})
    assert length.level == 0.0


def test_refused_requests_and_unknown_usage_are_not_learned():
    length = AnswerLength()
    for tokens in (0, -1, None):
        length.learn_one({} if tokens is None else {"output_tokens": tokens})
    assert length.n == 0 and length.level == 0.0
