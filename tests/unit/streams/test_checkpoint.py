"""The Checkpoint: records are acked only after their outputs are stored and their keys'
states changelogged; a failed flush keeps both for the next one."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from distillguard.streams.checkpoint import ChangelogSeals, Checkpoint


class Table:
    """A table's store and the changelog records sent for it, in order."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple] = []

    def send_changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.changelog.append(("record", partition, key, value))


class Event:
    def __init__(self, partition: int, offset: int, log: list) -> None:
        self.message = SimpleNamespace(partition=partition, offset=offset)
        self.log = log

    def ack(self) -> None:
        self.log.append(("ack", self.message.partition, self.message.offset))


@pytest.fixture
def table():
    return Table()


@pytest.fixture
def checkpoint(table):
    async def flush_producer():
        table.changelog.append(("producer flushed",))

    return Checkpoint(table, flush_producer=flush_producer)


def apply(checkpoint: Checkpoint, table: Table, key: bytes, partition: int, offset: int, value: bytes) -> Event:
    """What the worker does for one record: state set in the store, key dirty, ack held."""
    table.data[key] = value
    checkpoint.changed(key, partition)
    event = Event(partition, offset, table.changelog)
    checkpoint.processed(event)
    return event


def test_records_are_acked_after_the_store_and_the_changelog(checkpoint, table):
    apply(checkpoint, table, b"k1", 0, 10, b"s1")
    apply(checkpoint, table, b"k1", 0, 11, b"s2")  # a hot key: one changelog record a flush
    apply(checkpoint, table, b"k2", 3, 7, b"t1")
    stored = []

    async def store():
        stored.append(list(table.changelog))  # nothing changelogged or acked before the store
        return True

    assert asyncio.run(checkpoint.flush(store)) is True
    assert stored == [[]]
    assert table.changelog == [
        ("record", 0, b"k1", b"s2"), ("record", 3, b"k2", b"t1"),
        # each partition sealed with its last record in a batch of its own (tansu's short high watermark)
        ("producer flushed",), ("record", 0, b"k1", b"s2"), ("record", 3, b"k2", b"t1"), ("producer flushed",),
        ("ack", 0, 10), ("ack", 0, 11), ("ack", 3, 7)]
    assert len(checkpoint) == 0 and checkpoint.dirty == {}


@pytest.mark.parametrize("outcome", ["refused", "raised"])
def test_a_failed_store_keeps_records_unacked_and_keys_dirty(checkpoint, table, outcome):
    apply(checkpoint, table, b"k1", 0, 10, b"s1")

    async def store():
        if outcome == "raised":
            raise ConnectionError("ClickHouse down")
        return False

    if outcome == "raised":
        with pytest.raises(ConnectionError):
            asyncio.run(checkpoint.flush(store))
    else:
        assert asyncio.run(checkpoint.flush(store)) is False
    assert table.changelog == [] and len(checkpoint) == 1 and checkpoint.dirty == {b"k1": 0}
    assert asyncio.run(checkpoint.flush(lambda: asyncio.sleep(0, True))) is True
    assert table.changelog[-1] == ("ack", 0, 10) and ("record", 0, b"k1", b"s1") in table.changelog


def test_records_processed_during_a_flush_wait_for_the_next(checkpoint, table):
    apply(checkpoint, table, b"k1", 0, 10, b"s1")
    late: list[Event] = []

    async def store():
        # the agent goes on while ClickHouse writes: this record's rows are not in this flush
        late.append(apply(checkpoint, table, b"k2", 1, 5, b"t1"))
        return True

    asyncio.run(checkpoint.flush(store))
    assert ("ack", 0, 10) in table.changelog and ("ack", 1, 5) not in table.changelog
    assert not any(entry[:3] == ("record", 1, b"k2") for entry in table.changelog)
    assert len(checkpoint) == 1 and checkpoint.dirty == {b"k2": 1}


def test_a_forgotten_key_is_not_changelogged(checkpoint, table):
    apply(checkpoint, table, b"k1", 0, 10, b"s1")
    table.data.pop(b"k1")
    checkpoint.forget(b"k1")
    asyncio.run(checkpoint.flush())
    assert table.changelog == [("ack", 0, 10)]


def test_lowest_unacked_offset_per_partition(checkpoint, table):
    for partition, offset in [(0, 12), (0, 9), (2, 4), (0, 30), (2, 3)]:
        apply(checkpoint, table, b"k", partition, offset, b"s")
    assert checkpoint.lowest_unacked() == {0: 9, 2: 3}


def test_the_flush_timer_learns_of_flushes_that_went_through_since_it_last_asked(checkpoint, table):
    """The worker's timer skips a tick another flush did the work of; a failed flush did none."""
    assert checkpoint.flushed_since_asked() is False
    apply(checkpoint, table, b"k1", 0, 10, b"s1")
    assert asyncio.run(checkpoint.flush(lambda: asyncio.sleep(0, False))) is False
    assert checkpoint.flushed_since_asked() is False  # refused: the records still wait for the timer
    assert asyncio.run(checkpoint.flush(lambda: asyncio.sleep(0, True))) is True
    assert asyncio.run(checkpoint.flush(lambda: asyncio.sleep(0, True))) is True
    assert checkpoint.flushed_since_asked() is True
    assert checkpoint.flushed_since_asked() is False  # once per flush, not per call


def test_the_next_flush_stores_while_one_changelogs_and_acks_keep_their_order(table):
    """An alert's flush need not wait for the broker to ack the previous flush's changelog;
    changelog records and acks still go in flush order."""
    log = table.changelog

    async def scenario():
        release = asyncio.Event()

        async def slow_producer_flush():  # the broker's acks of the first flush's changelog
            log.append(("producer flushed",))
            await release.wait()

        checkpoint = Checkpoint(table, flush_producer=slow_producer_flush)
        apply(checkpoint, table, b"k1", 0, 10, b"s1")
        first = asyncio.create_task(checkpoint.flush(lambda: asyncio.sleep(0, True)))
        await asyncio.sleep(0.01)  # the first flush now waits in its changelog
        apply(checkpoint, table, b"k1", 0, 11, b"s2")
        stored = []

        async def second_store():
            stored.append(list(log))
            return True

        second = asyncio.create_task(checkpoint.flush(second_store))
        await asyncio.sleep(0.01)
        assert stored, "the second flush did not store while the first changelogged"
        assert ("ack", 0, 10) not in log and ("ack", 0, 11) not in log
        release.set()
        assert await first and await second

    asyncio.run(scenario())
    records = [entry for entry in log if entry[0] in ("record", "ack")]
    assert records.index(("ack", 0, 10)) < records.index(("record", 0, b"k1", b"s2")) < records.index(("ack", 0, 11))
    assert records[-1] == ("ack", 0, 11)


def _seals(log: list) -> ChangelogSeals:
    async def flush_producer():
        log.append(("flush",))
    return ChangelogSeals(flush_producer)


def test_seals_resend_each_written_partitions_last_key_alone_after_a_flush():
    # tansu reports a partition's end as its last batch's start + 1: a restarted router's
    # recovery stops there. The seal flushes what was sent, then sends one record per
    # partition in a batch of its own (flushed), so the reported end is the true end.
    incidents, positions = Table(), Table()
    seals = _seals(incidents.changelog)
    for key, partition in ((b"a", 0), (b"b", 0), (b"c", 1)):
        incidents.data[key] = b"open:" + key
        incidents.send_changelog(partition, key, incidents.data[key])
        seals.written(incidents, partition, key)
    positions.data[b"0"] = b"41"
    seals.written(positions, 0, b"0")
    asyncio.run(seals.seal())
    assert incidents.changelog[3:] == [("flush",), ("record", 0, b"b", b"open:b"), ("record", 1, b"c", b"open:c"),
                                       ("flush",)]
    assert positions.changelog == [("record", 0, b"0", b"41")]  # one table's partition 0 is not another's


def test_a_seal_sends_the_tables_value_as_it_is_when_sealed_and_tombstones_for_deleted_keys():
    table = Table()
    seals = _seals(table.changelog)
    table.data[b"a"] = b"v1"
    seals.written(table, 0, b"a")
    table.data[b"a"] = b"v2"  # changed again, its record not yet seen by the seal
    table.data[b"b"] = b"x"
    seals.written(table, 1, b"b")
    del table.data[b"b"]  # deleted: the last record of partition 1 is its tombstone
    asyncio.run(seals.seal())
    assert table.changelog == [("flush",), ("record", 0, b"a", b"v2"), ("record", 1, b"b", None), ("flush",)]
    asyncio.run(seals.seal())  # nothing written since: nothing sent, no flush
    assert len(table.changelog) == 4


def test_a_failed_seal_keeps_its_partitions_for_the_next_one():
    table, log = Table(), []
    fail = [True]

    async def flush_producer():
        if fail[0]:
            raise ConnectionError("broker gone")
        log.append("flush")
    seals = ChangelogSeals(flush_producer)
    table.data[b"a"] = b"v1"
    seals.written(table, 0, b"a")
    with pytest.raises(ConnectionError):
        asyncio.run(seals.seal())
    fail[0] = False
    asyncio.run(seals.seal())
    assert table.changelog == [("record", 0, b"a", b"v1")] and log == ["flush", "flush"]
