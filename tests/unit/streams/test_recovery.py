"""The table-recovery watch: restart a recovery that reads nothing, once; then report it."""
from distillguard.streams.recovery import RESTART, STALLED, RecoveryWatch


def feed(watch: RecoveryWatch, observations) -> list:
    return [watch.observe(in_recovery, offsets, now) for now, in_recovery, offsets in observations]


def test_a_recovery_that_moves_is_never_restarted():
    watch = RecoveryWatch(stall_s=10)
    # applies a record every 9 s: never 10 s without progress
    actions = feed(watch, [(t, True, {"cl-0": t}) for t in range(0, 300, 9)])
    assert actions == [None] * len(actions) and not watch.stalled


def test_a_silent_recovery_is_restarted_once_then_reported_until_it_ends():
    watch = RecoveryWatch(stall_s=10)
    still = {"cl-0": -1, "cl-1": 4}
    actions = feed(watch, [(t, True, still) for t in range(0, 40, 5)])
    # seen at 0, restarted at 10, reported at 20 (10 s after the restart), then quiet
    assert actions == [None, None, RESTART, None, STALLED, None, None, None]
    assert watch.stalled
    assert watch.observe(False, {}, 45) is None and not watch.stalled  # the recovery ended


def test_after_a_restart_the_next_stall_is_reported_even_if_offsets_moved_between():
    # A restart re-seeds the offsets Faust reports: that must not buy another restart, or a
    # recovery that never reads would be restarted for ever and never reported.
    watch = RecoveryWatch(stall_s=10)
    assert feed(watch, [(0, True, {"cl-0": 1}), (10, True, {"cl-0": 1})]) == [None, RESTART]
    assert feed(watch, [(12, True, {"cl-0": -1}), (22, True, {"cl-0": -1})]) == [None, STALLED]
    assert watch.stalled


def test_a_new_recovery_starts_afresh():
    watch = RecoveryWatch(stall_s=10)
    feed(watch, [(0, True, {"a": 1}), (10, True, {"a": 1}), (20, True, {"a": 1})])
    assert watch.stalled
    feed(watch, [(25, False, {})])
    assert feed(watch, [(30, True, {"a": 1}), (35, True, {"a": 1})]) == [None, None] and not watch.stalled
