"""Input partition epochs: offsets that go backwards are a new log, not duplicates.

A partition's offsets identify a record only within one log. The embedded tansu broker
keeps its logs in memory: after a restart every topic is empty and offsets start again at
0; on Apache Kafka a topic deleted and created again does the same. The worker recognises
records it has already applied by their position (the key state's last input position, the
sink's per-partition watermark), so without epochs every record of the new log up to the
old watermark was dropped as a duplicate (12,000 of 18,000 in the fault run).

A record at or below what the sink has stored for its partition is either a normal re-read
(a crash or rebalance re-delivers records stored but not committed) or the start of a new
log. The two are told apart by content: the record stored at that position is looked up
(``ClickHouseSink.stored_at``) and compared with the one read now. The same log gives the
same record at the same offset; a different event id, or a row stored where the record now
is garbage (or the reverse), means the log was replaced. Offsets and high watermarks alone
cannot tell: tansu reports a high watermark short of the end (the start of its last batch
+ 1), which after an ordinary crash can lie below the stored watermark.

A record that cannot decide (nothing stored at its offset: it was a duplicate event, or
garbage then and now) is handled as before (a duplicate). When a record decides "new log",
the new log's records before it (undecided ones, and any the consumer jumped over: Faust
hands a rewound partition on from where it was) are read back from the broker and
processed in the new epoch. A running worker can also have read some of the new log at
its old position before the group noticed the broker had restarted (its fetch position
was still valid): those were stored under the old epoch, and :meth:`EpochTracker.carry`
keeps their event ids so that they are not stored twice. Such a worker sees no offset go
backwards until it is rewound: every ``DG_EPOCH_CHECK_INTERVAL_S`` it compares the record
at a reference offset (a row it stored earlier, :meth:`EpochTracker.reference`) with the
broker's record there, and a different one marks the partition replaced
(:meth:`EpochTracker.mark_replaced`); the worker rewinds it, and its next record begins
the new epoch. Positions pack the epoch above the offset (:func:`position`), so every
comparison made on offsets before (key state, sink watermark, cluster sources) orders the
new log after the old one, and a crash inside the new log is still recognised as a re-read.
The per-key ``event_id`` ring still catches events a producer re-sends into the new log.

>>> tracker = EpochTracker()
>>> stored = position(0, 99)  # the sink has offsets up to 99 of epoch 0
>>> tracker.needs_check(3, 120, stored), tracker.needs_check(3, 10, stored)
(False, True)
>>> tracker.decide(3, 10, StoredRecord("row", "e-17"), "e-10")  # another record at offset 10
'new'
>>> decision = tracker.begin_epoch(3, 10, stored)
>>> decision.epoch, decision.stored_offset, tracker.position(3, 10, stored) == position(1, 10)
(1, 99, True)
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from distillguard.models.positions import (  # noqa: F401 - re-exported: the tracker's vocabulary
    EPOCH_SHIFT, MAX_OFFSET, StoredRecord, epoch_of, offset_of, position)

SAME, NEW, UNDECIDED = "same", "new", "undecided"
# At most this many rows of the previous epoch are checked for records of the new log read
# before the epoch was detected (a window of fetches: a few hundred records at most).
CARRY_MAX = 50_000


@dataclass(frozen=True, slots=True)
class NewEpoch:
    """A new log detected on a partition: log it, count it, read back ``refill_from`` up to
    the deciding offset (records handled as duplicates while undecided) when set."""

    partition: int
    epoch: int
    offset: int  # the record that decided it
    stored_offset: int  # the highest offset stored of the previous epoch
    refill_from: int  # read back from here (the log start) up to ``offset``


@dataclass(slots=True)
class _Partition:
    epoch: int = 0
    verified: bool = False  # this run has seen a record of the stored range match: same log
    last_offset: int = -1  # the last offset handed to the tracker (to see a backwards jump)
    undecided_from: int | None = None
    undecided: int = 0
    checking_since: float | None = None
    # offset -> event id of records stored under the previous epoch that may come from this
    # log (read before the epoch was detected); bounded by CARRY_MAX, dropped once passed
    carried: dict[int, str] | None = None
    carried_until: int = -1
    reference: tuple[int, str] | None = None  # (offset, event id) of a row stored from this log
    replaced: bool = False  # the broker's record at the reference differs: the next record begins an epoch


class EpochTracker:
    """Per input partition: the epoch in effect and whether the stored range was verified.

    No I/O: the worker asks :meth:`needs_check`, looks the stored record up when it must,
    hands it to :meth:`decide` and calls :meth:`begin_epoch` on ``"new"``.
    """

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._partitions: dict[int, _Partition] = {}
        self.detected: dict[int, NewEpoch] = {}  # the last new epoch of each partition

    def _part(self, partition: int, stored: int) -> _Partition:
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        # Another worker (or this one before a restart) may have stored rows of a later epoch.
        if epoch_of(stored) > part.epoch:
            part.epoch, part.verified = epoch_of(stored), False
        return part

    def epoch(self, partition: int, stored: int) -> int:
        return self._part(partition, stored).epoch

    def position(self, partition: int, offset: int, stored: int) -> int:
        """The position of a record of ``partition`` in the epoch in effect."""
        return position(self._part(partition, stored).epoch, offset)

    def needs_check(self, partition: int, offset: int, stored: int) -> bool:
        """Whether the record at ``offset`` must be compared with what is stored at its position.

        ``stored``: the sink's highest stored position for the partition (-1: none).
        Records beyond the stored range need no check; nor, once one record of the range has
        matched, the records after it, until the offsets jump backwards again.
        """
        part = self._part(partition, stored)
        went_back = offset < part.last_offset
        part.last_offset = offset
        if went_back:
            part.verified = False
        stored_offset = offset_of(stored) if epoch_of(stored) == part.epoch else -1
        if offset > stored_offset:
            if part.undecided_from is not None:
                # Past the stored range with nothing that could decide: the records in between
                # left no trace to compare with (duplicates, garbage both times). Kept as before.
                part.undecided_from, part.undecided, part.checking_since = None, 0, None
                part.verified = True
            return False
        return not part.verified

    def decide(self, partition: int, offset: int, stored_record: StoredRecord | None,
               event_id: str | None) -> str:
        """Compare the record read now (``event_id``; None: it is garbage) with the one stored
        at its position. ``"same"`` log, a ``"new"`` one, or ``"undecided"``."""
        part = self._partitions.setdefault(partition, _Partition())
        if stored_record is None or (stored_record.kind == "dead" and event_id is None):
            if part.undecided_from is None:
                part.undecided_from, part.checking_since = offset, self._clock()
            part.undecided += 1
            return UNDECIDED
        if stored_record.kind == "row" and stored_record.event_id == event_id:
            part.verified = True
            part.undecided_from, part.undecided, part.checking_since = None, 0, None
            return SAME
        return NEW

    def begin_epoch(self, partition: int, offset: int, stored: int) -> NewEpoch:
        """Start the next epoch at ``offset`` (after :meth:`decide` said ``"new"``)."""
        part = self._part(partition, stored)
        part.epoch += 1
        part.verified = False
        part.undecided_from, part.undecided, part.checking_since = None, 0, None
        part.carried, part.carried_until = None, -1
        part.reference, part.replaced = None, False
        stored_offset = offset_of(stored) if epoch_of(stored) == part.epoch - 1 else -1
        event = self.detected[partition] = NewEpoch(partition, part.epoch, offset, stored_offset, 0)
        return event

    @staticmethod
    def carry_range(new: NewEpoch, processed_until: int | None) -> tuple[int, int] | None:
        """Offsets whose rows, stored under the previous epoch, may hold records of the new log:
        those this worker processed before the epoch began (``processed_until``: the next offset
        it expected then), at most :data:`CARRY_MAX` of the last."""
        if not processed_until or processed_until <= 0:
            return None
        return max(0, processed_until - CARRY_MAX), processed_until

    def carry(self, partition: int, event_ids: dict[int, str], until: int) -> None:
        """Event ids stored under the previous epoch at offsets below ``until`` (see :meth:`carry_range`)."""
        part = self._partitions.setdefault(partition, _Partition())
        part.carried, part.carried_until = dict(event_ids), until

    def carrying(self, partition: int) -> bool:
        """Whether records of this partition may have been stored under the previous epoch
        (:meth:`stored_before` then needs their event ids)."""
        part = self._partitions.get(partition)
        return part is not None and part.carried is not None

    def stored_before(self, partition: int, offset: int, event_id: str | None) -> bool:
        """Whether this record of the new log was already stored under the previous epoch."""
        part = self._partitions.get(partition)
        if part is None or part.carried is None:
            return False
        if offset >= part.carried_until:
            part.carried, part.carried_until = None, -1
            return False
        # (kept, not popped: Faust may hand the record over again after it was read back)
        return event_id is not None and part.carried.get(offset) == event_id

    def checking_for(self, now: float) -> dict[int, float]:
        """Partitions whose offsets went backwards with no decision yet: seconds since."""
        return {p: now - part.checking_since for p, part in self._partitions.items()
                if part.checking_since is not None}

    def reference(self, partition: int) -> tuple[int, str] | None:
        """The (offset, event id) of a row stored from this partition's current log, to compare
        with the broker's record at that offset (None: take one with :meth:`set_reference`)."""
        part = self._partitions.get(partition)
        return part.reference if part is not None else None

    def set_reference(self, partition: int, offset: int, event_id: str | None) -> None:
        """Set (or, with ``event_id`` None, drop: retention removed it) the partition's reference."""
        part = self._partitions.setdefault(partition, _Partition())
        part.reference = (offset, event_id) if event_id is not None else None

    def mark_replaced(self, partition: int) -> None:
        """The broker holds another record at the reference offset: the log was replaced. Until
        a record of it begins the new epoch the partition counts as undecided (:meth:`checking_for`)."""
        part = self._partitions.setdefault(partition, _Partition())
        part.replaced = True
        if part.checking_since is None:
            part.checking_since = self._clock()

    def rewound(self, partition: int) -> None:
        """A partition found replaced was rewound and its records come again: from here they
        are compared with what is stored (the packed path: its topic may still hold envelopes
        of the old log, so the first record after the rewind cannot be taken for the new log)."""
        part = self._partitions.get(partition)
        if part is not None:
            part.replaced = False

    def replaced(self, partition: int) -> bool:
        part = self._partitions.get(partition)
        return part is not None and part.replaced
