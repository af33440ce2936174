"""False-positive suppression list: expiry from the feedback time, bounded size."""
from __future__ import annotations

from distillguard.models.suppression import SuppressionList


def test_suppression_expires_ttl_after_the_feedback_time():
    s = SuppressionList(ttl_ms=100)
    assert s.add("key", "k", ts_ms=1000)
    assert s.suppressed("key", "k", now_ms=1099) and not s.suppressed("key", "k", now_ms=1100)
    assert not s.suppressed("cluster", "k", now_ms=1000)  # the type is part of the identity
    assert not s.add("key", "k", ts_ms=900)  # an older record (re-read) does not shorten it
    assert s.add("key", "k", ts_ms=1050) and s.suppressed("key", "k", now_ms=1120)
    assert s.expire(1200) == 1 and len(s) == 0


def test_suppression_is_bounded_dropping_what_ends_first():
    s = SuppressionList(ttl_ms=100, max_entities=3)
    for i in range(5):
        s.add("key", f"k{i}", ts_ms=i)
    assert len(s) == 3
    assert not s.suppressed("key", "k0", now_ms=10) and not s.suppressed("key", "k1", now_ms=10)
    assert all(s.suppressed("key", f"k{i}", now_ms=10) for i in (2, 3, 4))


def test_lift_ends_a_suppression():
    s = SuppressionList(ttl_ms=100)
    s.add("cluster", "c", ts_ms=0)
    s.lift("cluster", "c")
    assert not s.suppressed("cluster", "c", now_ms=1) and s.expire(1000) == 0
