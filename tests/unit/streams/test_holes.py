"""The input hole guard: a record beyond the next expected offset reveals a hole."""
from distillguard.streams.holes import HoleGuard


def feed(guard: HoleGuard, partition: int, offsets) -> list[bool]:
    admitted = []
    for offset in offsets:
        admitted.append(guard.admit(partition, offset))
        if admitted[-1]:
            guard.processed(partition, offset)
    return admitted


def test_in_order_records_and_redeliveries_are_admitted():
    guard = HoleGuard()
    assert feed(guard, 0, [5, 6, 7, 3, 4, 8]) == [True] * 6  # 3, 4: re-delivered after a rebalance
    assert guard.expected(0) == 9


def test_a_record_beyond_a_hole_waits_until_the_hole_is_filled():
    guard = HoleGuard()
    feed(guard, 0, [0, 1, 2])
    assert guard.admit(0, 6) is False and guard.expected(0) == 3
    for filled in (3, 4, 5):  # what the worker reads back from the broker
        guard.processed(0, filled)
    assert guard.admit(0, 6) is True


def test_partitions_are_independent():
    guard = HoleGuard()
    feed(guard, 0, [0, 1])
    feed(guard, 1, [7])
    assert guard.admit(1, 8) and not guard.admit(0, 3) and guard.admit(2, 100)


def test_a_partition_starts_at_its_committed_offset_so_a_lost_first_record_is_seen():
    guard = HoleGuard()
    assert not guard.known(3)
    guard.start(3, 0)  # nothing committed: the log's start
    assert guard.known(3) and guard.admit(3, 1) is False and guard.expected(3) == 0
    guard.start(3, 50)  # known partitions keep their position (kept across rebalances too)
    assert guard.expected(3) == 0
