"""Input partition epochs: a replaced log is told from a re-read by what is stored at its offsets."""
from __future__ import annotations

import pytest

from distillguard.streams.epochs import (NEW, SAME, UNDECIDED, EpochTracker, StoredRecord, epoch_of, offset_of,
                                         position)


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
    assert (new.epoch, new.offset, new.stored_offset, new.refill_from) == (1, 0, 99, None)
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
