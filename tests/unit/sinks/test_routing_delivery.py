"""Backoff schedule, status classes, token bucket and action policy (pure parts of delivery)."""
from __future__ import annotations

import random

import pytest

from distillguard.sinks.routing import actions, lifecycle
from distillguard.sinks.routing.delivery import backoff_delay, backoff_schedule, classify
from distillguard.sinks.routing.ratelimit import TokenBucket
from distillguard.sinks.routing.routes import Delivery


def test_backoff_grows_exponentially_is_capped_and_jittered():
    policy = Delivery(max_attempts=6, backoff_base_s=1.0, backoff_max_s=10.0, jitter=0.5)
    schedule = backoff_schedule(policy, random.Random(7))
    assert len(schedule) == 5
    for attempt, delay in enumerate(schedule, start=1):
        nominal = min(10.0, 2 ** (attempt - 1))
        assert nominal * 0.5 <= delay <= nominal
    assert len({round(d, 6) for d in backoff_schedule(policy, random.Random(8))} - set(schedule)) > 0
    no_jitter = Delivery(backoff_base_s=0.5, backoff_max_s=4, jitter=0)
    assert backoff_schedule(no_jitter, random.Random(1)) == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(1, no_jitter, random.Random(1), retry_after=3.0) == 3.0
    assert backoff_delay(1, no_jitter, random.Random(1), retry_after=300.0) == 4.0  # capped


@pytest.mark.parametrize("status, verdict", [(200, "ok"), (202, "ok"), (400, "reject"), (401, "reject"),
                                             (404, "reject"), (408, "retry"), (429, "retry"), (500, "retry"),
                                             (503, "retry")])
def test_status_classes(status, verdict):
    assert classify(status) == verdict


def test_token_bucket_limits_and_refills():
    bucket = TokenBucket(per_minute=6, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.wait_s(0.0) == pytest.approx(10.0)
    assert not bucket.take(9.9) and bucket.take(10.0)
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)  # burst caps the savings


def test_actions_once_per_version_then_release(config, make_alert):
    alert = make_alert("c1", entity_type="cluster", severity="warning", score=0.7, keys=["a", "b", "c"])
    state = lifecycle.on_alert(None, alert, now_ms=1, partition=0, targets=[], lifecycle=config.lifecycle).state
    record = actions.next_action(state, config.actions, 2)
    assert record["action"] == "perturb_outputs" and record["action_id"] == "dg:cluster:c1:1:v1:perturb_outputs"
    assert record["api_key_ids"] == ["a", "b", "c"]
    actions.mark_acted(state, record)
    assert actions.next_action(state, config.actions, 3) is None  # once per version
    critical = dict(alert, severity="critical")
    state = lifecycle.on_alert(state, critical, now_ms=4, partition=0, targets=[], lifecycle=config.lifecycle).state
    record = actions.next_action(state, config.actions, 5)
    assert record["action"] == "require_verification" and record["version"] == 2
    actions.mark_acted(state, record)
    state = lifecycle.on_feedback(state, "resolve", now_ms=6, lifecycle=config.lifecycle).state
    release = actions.next_action(state, config.actions, 7)
    assert release["action"] == "release"
    actions.mark_acted(state, release)
    assert actions.next_action(state, config.actions, 8) is None
