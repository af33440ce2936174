"""The health judgement behind /health: each condition that must make it fail."""
from __future__ import annotations

from distillguard.streams.health import CommitWatch, HealthJudge

JUDGE = HealthJudge(stall_after_s=60, sink_failing_unhealthy_s=120)


def test_healthy_when_nothing_is_wrong():
    verdict = JUDGE.verdict(now=1000.0)
    assert verdict.healthy and verdict.status == "ok"


def test_commits_not_moving_while_input_waits_is_unhealthy():
    watch = CommitWatch(stall_after_s=60)
    assert not watch.observe(3, committed=100, high=250, now=0.0)
    assert not watch.observe(3, committed=100, high=400, now=59.0)
    assert watch.observe(3, committed=100, high=400, now=60.0)
    verdict = JUDGE.verdict(now=60.0, commit_stalled=watch.stalled)
    assert not verdict.healthy and verdict.status == "commits stalled" and verdict.details == {"commit_stalled": [3]}


def test_commits_that_move_or_have_nothing_waiting_are_not_stalled():
    watch = CommitWatch(stall_after_s=60)
    watch.observe(0, committed=100, high=250, now=0.0)
    assert not watch.observe(0, committed=101, high=250, now=100.0)  # moved: the clock starts again
    assert not watch.observe(0, committed=101, high=250, now=150.0)
    assert not watch.observe(1, committed=250, high=250, now=0.0)
    assert not watch.observe(1, committed=250, high=250, now=1000.0)  # idle, all committed
    # a short high watermark (tansu: the start of its last batch + 1) is not input waiting
    assert not watch.observe(2, committed=250, high=201, now=1000.0)
    assert not watch.stalled


def test_nothing_committed_with_records_waiting_stalls_too():
    watch = CommitWatch(stall_after_s=60)
    watch.observe(0, committed=None, high=10, now=0.0)
    assert watch.observe(0, committed=None, high=10, now=61.0)


def test_a_partition_moved_away_is_forgotten():
    watch = CommitWatch(stall_after_s=60)
    watch.observe(0, committed=1, high=10, now=0.0)
    watch.observe(0, committed=1, high=10, now=61.0)
    watch.keep_only({1})
    assert watch.stalled == set()


def test_a_sink_failing_longer_than_the_setting_is_unhealthy():
    assert JUDGE.verdict(now=1000.0, sink_failing_since=900.0).healthy
    verdict = JUDGE.verdict(now=1000.0, sink_failing_since=880.0)
    assert not verdict.healthy and verdict.status == "sink failing" and verdict.details == {"sink_failing_s": 120.0}


def test_table_recovery_stalled_is_unhealthy():
    verdict = JUDGE.verdict(now=0.0, recovery_stalled=True)
    assert not verdict.healthy and verdict.status == "table recovery stalled"


def test_offsets_gone_back_with_no_decision_for_long_is_unhealthy():
    assert JUDGE.verdict(now=0.0, epochs_undecided={2: 59.0}).healthy
    verdict = JUDGE.verdict(now=0.0, epochs_undecided={2: 61.0, 4: 3.0})
    assert not verdict.healthy and verdict.status == "offsets went backwards, epoch undecided"
    assert verdict.details == {"epoch_undecided_s": {"2": 61.0}}


def test_a_crashed_agent_comes_first():
    verdict = JUDGE.verdict(now=1000.0, crashed={"process-requests": "RuntimeError"}, recovery_stalled=True,
                            sink_failing_since=0.0)
    assert verdict.status == "agent crashed" and verdict.details == {"crashed": {"process-requests": "RuntimeError"}}


def test_processing_not_moving_while_records_wait_is_unhealthy():
    """Commits can move past records never processed (a replaced log's commits): the
    processing position is judged too."""
    verdict = JUDGE.verdict(now=0.0, input_stalled={1, 2})
    assert not verdict.healthy and verdict.status == "partitions stalled" and verdict.details == {"stalled": [1, 2]}
