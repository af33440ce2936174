"""HarvestOnset: when a key's run of long answers began (its alert's account of the key's past)."""
from __future__ import annotations

from distillguard.models.detectors import HarvestOnset


def learn(onset: HarvestOnset, answers) -> HarvestOnset:
    for x in answers:
        onset.learn_one(x)
    return onset


def test_a_run_of_long_answers_starts_where_the_ordinary_ones_end():
    onset = learn(HarvestOnset(), [{"output_tokens": 250}] * 80 + [{"output_tokens": 1500}] * 40)
    assert onset.run_start == 80 and onset.evidence > 0


def test_a_few_ordinary_answers_inside_a_harvest_do_not_restart_the_run():
    answers = [{"output_tokens": 250 if i % 4 == 3 else 1500} for i in range(200)]  # one in four short
    onset = learn(HarvestOnset(), answers)
    assert onset.run_start == 0


def test_follow_ups_that_hold_and_unknown_usage_are_no_harvest():
    # long answers in real conversation turns, and requests without usage: the run never starts
    onset = learn(HarvestOnset(), [{"output_tokens": 1500, "follow_up": True}] * 50 + [{"output_tokens": -1}] * 50
                  + [{}] * 10)
    assert onset.evidence == 0.0 and onset.run_start == 0


def test_a_person_s_occasional_long_answer_decays_away():
    answers = [{"output_tokens": 1500 if i % 10 == 0 else 200} for i in range(100)]
    assert learn(HarvestOnset(), answers).evidence == 0.0
