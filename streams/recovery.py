"""When to restart a Faust table recovery that reads nothing, and when to give up on it.

After a broker restart, Faust's table recovery was seen to read no changelog record at all
and wait for ever, with every input partition paused (about 1 run in 4 of the broker-restart
fault test on noida). The worker looks at the recovery every few seconds and hands what it
sees to a :class:`RecoveryWatch`: a recovery whose applied offsets have not moved for
``stall_s`` is restarted once; if it still reads nothing for as long again, it is reported
stalled (``/health`` answers 503, so that the orchestrator restarts the worker).

>>> watch = RecoveryWatch(stall_s=60)
>>> watch.observe(True, {"cl-0": 5}, now=0.0), watch.observe(True, {"cl-0": 5}, now=61.0)
(None, 'restart')
>>> watch.observe(True, {"cl-0": 5}, now=100.0), watch.observe(True, {"cl-0": 5}, now=122.0)
(None, 'stalled')
>>> watch.stalled, watch.observe(False, {}, now=130.0), watch.stalled
(True, None, False)
"""
from __future__ import annotations

RESTART, STALLED = "restart", "stalled"


class RecoveryWatch:
    """One worker's watch over its table recovery (a few numbers, no I/O)."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._offsets: dict | None = None
        self._since = 0.0
        self._stage = 0  # 0 watching, 1 restarted once, 2 reported stalled

    @property
    def stalled(self) -> bool:
        return self._stage >= 2

    def observe(self, in_recovery: bool, offsets: dict, now: float) -> str | None:
        """What to do now: ``"restart"`` the recovery, report it ``"stalled"``, or nothing.

        ``offsets``: the changelog offsets the recovery has applied (any mapping that
        compares equal when nothing moved). Only a recovery that ends starts the watch afresh.
        """
        if not in_recovery:
            self._offsets, self._stage = None, 0
            return None
        if offsets != self._offsets:
            # Progress, or a first look. The stage is kept: a restart re-seeds the offsets
            # Faust reports, and that must not count as the restart having helped, or a
            # recovery that never reads would be restarted for ever and never reported.
            self._offsets, self._since = dict(offsets), now
            return None
        if now - self._since < self.stall_s or self._stage >= 2:
            return None
        if self._stage == 0:
            self._stage, self._since = 1, now
            return RESTART
        self._stage = 2
        return STALLED
