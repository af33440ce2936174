"""Hole detection on the input partitions: each partition is processed in offset order, whole.

Faust can hand an agent a partition's records with some missing: its fetch loop marks a
record as read before the agent has it, and drops the record when a rebalance suspends the
flow at that moment (seen after a broker restart: three records of one partition never
reached the agent; the next ones did, and their commits went past the hole). At-least-once
then silently loses those events. The worker does not depend on that loop being right: it
remembers, per partition, the next offset it expects, and a record beyond it means a hole.

The worker fills a hole by reading its records from the broker itself and processing them
before the record that revealed it. (Seeking the consumer back does not work: Faust drops
re-fetched records below the offset it last handed out.) A hole can also be real: nothing
is stored at those offsets (transaction markers, compacted or expired records); then the
broker returns nothing for it and processing goes on.

The first record of a partition is checked against the group's committed offset (where
the partition starts for this worker); the expected offset is kept when the partition is
revoked, so a hole left across a rebalance is still seen.

>>> guard = HoleGuard()
>>> guard.known(0)
False
>>> guard.start(0, 10)  # the group's committed offset
>>> guard.admit(0, 10), guard.processed(0, 10)
(True, None)
>>> guard.admit(0, 14)  # 11..13 never arrived: read them from the broker first
False
>>> guard.expected(0)
11
"""
from __future__ import annotations

import time


class HoleGuard:
    """Per partition: the next offset expected."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def admit(self, partition: int, offset: int) -> bool:
        """True: process the record now. False: records before it are missing (from
        :meth:`expected` up to it): fill the hole first."""
        expected = self._next.get(partition)
        # the first record seen of this partition, the next one, or a re-delivery of an
        # earlier one (after a rebalance: the detector's state recognises it)
        return expected is None or offset <= expected

    def known(self, partition: int) -> bool:
        return partition in self._next

    def start(self, partition: int, offset: int) -> None:
        """Where a partition not seen before starts (its committed offset)."""
        self._next.setdefault(partition, offset)

    def expected(self, partition: int) -> int | None:
        return self._next.get(partition)

    def restart(self, partition: int, offset: int) -> None:
        """The partition's log was replaced (a new epoch, see streams/epochs.py): it goes on
        from ``offset``, below what was expected of the old log."""
        self._next[partition] = offset

    def processed(self, partition: int, offset: int) -> None:
        """``offset`` went through processing (or was dead-lettered)."""
        if offset + 1 > self._next.get(partition, -1):
            self._next[partition] = offset + 1


def processed_head_gap(committed: int | None, acked: list[int], expected: int | None,
                       pending: int | None) -> tuple[int, int] | None:
    """Offsets ``begin`` .. ``end - 1`` at the head of a partition's commit that will never be
    acked again, but were processed and stored: Faust may pass them to the commit as a gap.

    Faust commits only from its committed offset through consecutive acked offsets, and it
    waits (for ever) when the first acked offset lies beyond the commit. After a rebalance
    Faust forgets the acks it had (the revoked partition's list is dropped) and seeks back to
    the commit, yet drops re-fetched records below the offset it last handed out: those
    records never come again, so nothing acks them, and the commit stays (seen: 23 while 517
    records were processed and stored, the broker-restart fault test). They were processed
    when ``expected`` (the next offset the worker expects) lies past them, and their outputs
    are stored when none of them waits for a flush (``pending``: the lowest offset of the
    partition still waiting; None: none).

    >>> processed_head_gap(23, [40, 41, 42], expected=43, pending=None)
    (23, 40)
    >>> processed_head_gap(23, [40, 41], expected=43, pending=30) is None  # 30 not yet stored
    True
    >>> processed_head_gap(23, [23, 24], expected=25, pending=None) is None  # no gap
    True
    """
    if committed is None or committed < 0 or not acked:
        return None
    head = min(acked)
    if head <= committed or expected is None or head > expected:
        return None
    if pending is not None and pending < head:
        return None
    return committed, head


def read_partition(kafka_config: dict, group_id: str, topic: str, partition: int, start: int,
                   end: int, timeout_s: float = 30.0) -> tuple[list, bool]:
    """The records stored at offsets ``start`` .. ``end - 1`` of one partition, read directly
    (a consumer of its own, no commits), as Faust messages; and whether the read got to
    ``end`` (or the partition's end) before ``timeout_s``."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    from faust.types import Message

    consumer = Consumer({**kafka_config, "group.id": group_id, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    records: list = []
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        start = max(start, low)  # records before the log start are gone (retention)
        if start >= end:
            return records, True
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return records, True
                continue
            if msg.offset() >= end:
                return records, True
            records.append(Message(msg.topic(), partition, msg.offset(), (msg.timestamp()[1] or 0) / 1000, 0,
                                   msg.headers(), msg.key(), msg.value(), None))
            if msg.offset() == end - 1:
                return records, True
        return records, False
    finally:
        consumer.close()


def read_group_commit(kafka_config: dict, group_id: str, topic: str, partition: int,
                      timeout_s: float = 10.0) -> int:
    """The offset ``group_id`` has committed on one partition, asked of the broker (0: none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka_config, "group.id": group_id, "enable.auto.commit": False})
    try:
        [found] = consumer.committed([TopicPartition(topic, partition)], timeout=timeout_s)
        return found.offset if found.error is None and found.offset >= 0 else 0
    finally:
        consumer.close()


def read_first_records(kafka_config: dict, group_id: str, topic: str, offsets: dict[int, int],
                       timeout_s: float = 5.0) -> dict[int, tuple[int, bytes | None]]:
    """Per partition, the first record stored at or after the given offset, as (offset, value);
    from the log start when the log ends before the offset (``auto.offset.reset``: earliest);
    partitions with no record at all or not read in ``timeout_s`` are left out."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({**kafka_config, "group.id": group_id, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    found: dict[int, tuple[int, bytes | None]] = {}
    waiting = set(offsets)
    try:
        # (no high-watermark shortcut: tansu reports the start of its last batch + 1)
        consumer.assign([TopicPartition(topic, partition, offset) for partition, offset in offsets.items()])
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.partition() not in waiting:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    waiting.discard(msg.partition())
                continue
            found[msg.partition()] = (msg.offset(), msg.value())
            waiting.discard(msg.partition())
        return found
    finally:
        consumer.close()
