"""The worker's health judgement: what ``/health`` answers, from numbers the worker gathers.

``/health`` is what the orchestrator restarts a worker on, so it must fail when the worker
is alive but no longer doing its job. The fault run found it answering 200 "ok" while a
poison record made every ClickHouse flush fail and commits froze (582 of 5,001 offsets),
and while a replaced log's records were dropped as duplicates. The worker is unhealthy when:

* an agent crashed (its unacked event blocks every later commit);
* table recovery stalled (:class:`~distillguard.streams.recovery.RecoveryWatch`);
* ClickHouse flushes have failed without a break for ``sink_failing_unhealthy_s``;
* a partition's committed offset has not moved for ``stall_after_s`` while the partition
  has records beyond it (:class:`CommitWatch`): input waits, nothing is completed;
* a partition's processing has not moved for ``stall_after_s`` while records wait beyond
  it (the worker's ``stalled`` partitions: it may commit offsets it has not processed);
* a partition's offsets went back below what was stored and, for ``stall_after_s``, no
  record could tell a re-read from a new log (``streams.epochs``). A new epoch once
  detected is handled (its events processed): ``/health`` lists it, still 200.

>>> judge = HealthJudge(stall_after_s=120, sink_failing_unhealthy_s=300)
>>> judge.verdict(now=1000.0, sink_failing_since=900.0).healthy
True
>>> v = judge.verdict(now=1000.0, sink_failing_since=600.0)
>>> v.healthy, v.status
(False, 'sink failing')
"""
from __future__ import annotations

from dataclasses import dataclass, field


class CommitWatch:
    """Per input partition: the committed offset, and since when it has not moved.

    >>> watch = CommitWatch(stall_after_s=60)
    >>> watch.observe(0, committed=10, high=15, now=0.0), watch.observe(0, committed=10, high=15, now=61.0)
    (False, True)
    >>> watch.observe(0, committed=15, high=15, now=62.0)  # caught up
    False
    """

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._since: dict[int, tuple[int, float]] = {}  # partition -> (committed offset, since when)
        self.stalled: set[int] = set()

    def observe(self, partition: int, committed: int | None, high: int | None, now: float) -> bool:
        """Whether ``partition`` is stalled: records beyond the commit (``high`` > ``committed``;
        None: nothing committed yet, i.e. 0) and the commit unchanged for ``stall_after_s``."""
        committed = committed if committed is not None and committed >= 0 else 0
        seen = self._since.get(partition)
        if seen is None or seen[0] != committed:
            seen = self._since[partition] = (committed, now)
        is_stalled = high is not None and high > committed and now - seen[1] >= self.stall_after_s
        (self.stalled.add if is_stalled else self.stalled.discard)(partition)
        return is_stalled

    def keep_only(self, partitions: set[int]) -> None:
        """Forget partitions no longer assigned (another worker commits them now)."""
        for partition in set(self._since) - partitions:
            del self._since[partition]
        self.stalled &= partitions


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    status: str  # "ok" or why not
    details: dict = field(default_factory=dict)


class HealthJudge:
    """Turns what the worker observed into ``/health``'s answer (no I/O, no clock of its own)."""

    def __init__(self, *, stall_after_s: float, sink_failing_unhealthy_s: float) -> None:
        self.stall_after_s = stall_after_s
        self.sink_failing_unhealthy_s = sink_failing_unhealthy_s

    def verdict(self, *, now: float, crashed: dict | None = None, recovery_stalled: bool = False,
                sink_failing_since: float | None = None, commit_stalled: set[int] | frozenset = frozenset(),
                input_stalled: set[int] | frozenset = frozenset(),
                epochs_undecided: dict[int, float] | None = None) -> Verdict:
        """The first reason to be unhealthy, in the order an operator should look at them.

        ``epochs_undecided``: partition -> seconds its offsets have been below what was
        stored with no decision (``EpochTracker.checking_for``).
        """
        if crashed:
            return Verdict(False, "agent crashed", {"crashed": dict(crashed)})
        if recovery_stalled:
            return Verdict(False, "table recovery stalled")
        if sink_failing_since is not None and now - sink_failing_since >= self.sink_failing_unhealthy_s:
            return Verdict(False, "sink failing", {"sink_failing_s": round(now - sink_failing_since, 1)})
        if commit_stalled:
            return Verdict(False, "commits stalled", {"commit_stalled": sorted(commit_stalled)})
        if input_stalled:
            return Verdict(False, "partitions stalled", {"stalled": sorted(input_stalled)})
        undecided = {p: s for p, s in (epochs_undecided or {}).items() if s >= self.stall_after_s}
        if undecided:
            return Verdict(False, "offsets went backwards, epoch undecided",
                           {"epoch_undecided_s": {str(p): round(s, 1) for p, s in sorted(undecided.items())}})
        return Verdict(True, "ok")
