"""``gc_tuning``: the long-running commands run with the collector's thresholds raised and
their start-up objects frozen (``benchmarks/gc.py``: 3-5 % of a replay's CPU was collection)."""
from __future__ import annotations

import gc
import json
import weakref

import pytest

from distillguard import cli
from distillguard.devtools.demo_traffic import demo_events
from distillguard.gc_tuning import THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_what_exists_and_still_collects_cycles(restored_gc):
    tune_gc()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()

    class Node:
        pass

    node = Node()
    node.me = node  # a cycle made after the freeze: garbage the collector still finds
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None


def test_replay_runs_with_the_tuned_collector(restored_gc, tmp_path):
    gc.set_threshold(700, 10, 10)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in demo_events(seed=3, users=5, campaign_events=50, hours=0.5)))
    assert cli.main(["replay", str(events), "--alerts", str(tmp_path / "alerts.jsonl"), "-q", "--jobs", "1"]) == 0
    assert gc.get_threshold() == THRESHOLDS
