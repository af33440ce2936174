"""Input partition epochs: a replaced log is told from a re-read by what is stored at its offsets."""
from __future__ import annotations

import pytest

from distillguard.streams.epochs import (CARRY_MAX, NEW, SAME, UNDECIDED, EpochTracker, StoredRecord, epoch_of,
                                         offset_of, position)


def test_positions_order_epochs_after_every_offset_of_earlier_ones():
    assert position(1, 0) > position(0, 10**11)
    assert (epoch_of(position(3, 17)), offset_of(position(3, 17))) == (3, 17)
    assert float(position(8000, 10**11)) == position(8000, 10**11)  # exact in the key state's float64
    with pytest.raises(ValueError):
        position(0, 1 << 40)


def test_records_beyond_the_stored_range_need_no_check():
    tracker = EpochTracker()
    assert not tracker.needs_check(0, 100, position(0, 99))
    assert not tracker.needs_check(1, 0, -1)  # nothing stored


def test_a_normal_re_read_is_verified_once_and_stays_a_duplicate():
    """After a crash the group re-delivers records stored but not committed: same content."""
    tracker = EpochTracker()
    stored = position(0, 99)
    assert tracker.needs_check(0, 90, stored)
    assert tracker.decide(0, 90, StoredRecord("row", "e90"), "e90") == SAME
    assert not tracker.needs_check(0, 91, stored)  # the rest of the range is the same log
    assert tracker.position(0, 91, stored) == position(0, 91)  # below the watermark: dropped as before
    assert tracker.detected == {}


def test_another_record_at_a_stored_offset_starts_a_new_epoch():
    tracker = EpochTracker()
    stored = position(0, 99)
    assert tracker.needs_check(0, 0, stored)
    assert tracker.decide(0, 0, StoredRecord("row", "old-0"), "new-0") == NEW
    new = tracker.begin_epoch(0, 0, stored)
    assert (new.epoch, new.offset, new.stored_offset, new.refill_from) == (1, 0, 99, 0)
    # every record of the new log sorts after everything stored of the old one
    assert tracker.position(0, 0, stored) == position(1, 0) > stored
    assert not tracker.needs_check(0, 1, stored)
    # once the sink has stored rows of epoch 1, a re-read inside the new log is checked against them
    stored = position(1, 40)
    assert tracker.needs_check(0, 10, stored)
    assert tracker.decide(0, 10, StoredRecord("row", "new-10"), "new-10") == SAME


@pytest.mark.parametrize("stored_record, now", [
    (StoredRecord("row", "e5"), None),  # a row was stored, the record is garbage now
    (StoredRecord("dead"), "e5"),  # garbage was stored, a valid event is there now
])
def test_a_row_where_garbage_is_now_or_the_reverse_is_a_new_log(stored_record, now):
    tracker = EpochTracker()
    assert tracker.needs_check(2, 5, position(0, 9))
    assert tracker.decide(2, 5, stored_record, now) == NEW


def test_undecided_records_are_read_back_once_the_new_log_is_known():
    tracker = EpochTracker(clock=lambda: 50.0)
    stored = position(0, 99)
    assert tracker.needs_check(0, 0, stored)
    assert tracker.decide(0, 0, None, "dup-event") == UNDECIDED  # nothing stored at 0 (a duplicate then)
    assert tracker.checking_for(now=80.0) == {0: 30.0}
    assert tracker.needs_check(0, 1, stored)
    assert tracker.decide(0, 1, StoredRecord("dead"), None) == UNDECIDED  # garbage then and now
    assert tracker.needs_check(0, 2, stored)
    assert tracker.decide(0, 2, StoredRecord("row", "old-2"), "new-2") == NEW
    assert tracker.begin_epoch(0, 2, stored).refill_from == 0
    assert tracker.checking_for(now=80.0) == {}


def test_leaving_the_stored_range_undecided_keeps_the_epoch():
    tracker = EpochTracker(clock=lambda: 0.0)
    stored = position(0, 3)
    assert tracker.needs_check(0, 3, stored)
    assert tracker.decide(0, 3, None, "e3") == UNDECIDED
    assert not tracker.needs_check(0, 4, stored)
    assert tracker.checking_for(now=10.0) == {} and tracker.epoch(0, stored) == 0


def test_offsets_going_back_again_are_checked_again():
    """A second broker restart in the same run: the verified range is verified no more."""
    tracker = EpochTracker()
    stored = position(0, 99)
    tracker.needs_check(0, 50, stored)
    tracker.decide(0, 50, StoredRecord("row", "e50"), "e50")
    assert not tracker.needs_check(0, 60, stored)
    assert tracker.needs_check(0, 0, stored)


def test_the_epoch_stored_by_another_worker_is_taken_up():
    tracker = EpochTracker()
    assert tracker.epoch(0, position(0, 5)) == 0
    assert tracker.epoch(0, position(2, 5)) == 2
    assert tracker.position(0, 6, position(2, 5)) == position(2, 6)


def test_records_of_the_new_log_stored_under_the_old_epoch_are_not_stored_twice():
    """A running worker read offsets 120..129 of the new log at its old fetch position before
    the group noticed the broker restart; they were stored under epoch 0. Offsets going back
    to 0 then start epoch 1, and when the new log reaches 120 again those records are known."""
    tracker = EpochTracker()
    stored = position(0, 129)
    assert tracker.needs_check(0, 0, stored)
    assert tracker.decide(0, 0, StoredRecord("row", "old-0"), "new-0") == NEW
    new = tracker.begin_epoch(0, 0, stored)
    assert EpochTracker.carry_range(new, processed_until=130) == (0, 130)
    assert EpochTracker.carry_range(new, processed_until=None) is None
    assert EpochTracker.carry_range(new, processed_until=10**6) == (10**6 - CARRY_MAX, 10**6)  # bounded
    tracker.carry(0, {5: "old-5", 120: "new-120", 121: "new-121"}, until=130)
    assert not tracker.stored_before(0, 5, "new-5")  # the old log's record at 5: this one is new
    assert tracker.stored_before(0, 120, "new-120")
    assert tracker.stored_before(0, 120, "new-120")  # handed over again: still known
    assert not tracker.stored_before(0, 121, None)  # garbage now
    assert not tracker.stored_before(0, 130, "new-130")  # past the range: forgotten
    assert not tracker.stored_before(0, 121, "new-121")


def test_a_log_replaced_under_a_running_worker_begins_an_epoch_at_its_next_record():
    """The worker's fetch position stayed valid in the new log: no offset went back. The
    periodic check found another record at the reference offset and marked the partition."""
    tracker = EpochTracker(clock=lambda: 10.0)
    stored = position(0, 99)
    tracker.set_reference(0, 99, "e99")
    assert tracker.reference(0) == (99, "e99") and not tracker.replaced(0)
    tracker.mark_replaced(0)
    assert tracker.replaced(0) and tracker.checking_for(now=40.0) == {0: 30.0}  # unresolved until a record comes
    new = tracker.begin_epoch(0, 130, stored)
    assert (new.epoch, new.refill_from) == (1, 0)  # the new log's records before 130 are read back
    assert EpochTracker.carry_range(new, processed_until=130) == (0, 130)  # those stored under epoch 0 skipped
    assert not tracker.replaced(0) and tracker.reference(0) is None and tracker.checking_for(now=40.0) == {}
    tracker.set_reference(0, 5, None)  # retention removed it: none
    assert tracker.reference(0) is None
