"""What a worker has processed but not yet made durable, and the one order it does it in.

A table's store is updated per record, its changelog once per key per flush: a hot key
costs one changelog record per flush instead of one per record. That is safe because the
records behind a changed entry are acked (so their offsets committed) only after the
outputs they produced are stored and the entry's changelog record is queued; Faust flushes
its producer before it commits offsets. A crash before that restores an older entry and the
records are applied again (their rows dropped by the sink's watermark), never skipped.

The commit-on-own-clock, hole and epoch logic (issue #17) stays in ``holes.py`` and
``epochs.py``; this class only holds the records and keys.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


class Checkpoint:
    """Unacked records and dirty keys of one changelogged table; flush -> changelog -> ack.

    >>> class Table:
    ...     data, sent = {}, []
    ...     def send_changelog(self, partition, key, value): self.sent.append((partition, key, value))
    >>> class Event:
    ...     acked = False
    ...     def ack(self): self.acked = True
    >>> async def nothing_to_flush(): pass
    >>> table, event = Table(), Event()
    >>> checkpoint = Checkpoint(table, flush_producer=nothing_to_flush)
    >>> table.data[b"k"] = b"state"; checkpoint.changed(b"k", 3); checkpoint.processed(event)
    >>> import asyncio; asyncio.run(checkpoint.flush())
    True
    >>> event.acked, table.sent  # (the last record of each partition is sent twice: see _changelog)
    (True, [(3, b'k', b'state'), (3, b'k', b'state')])
    """

    def __init__(self, table, *, flush_producer: Callable[[], Awaitable[None]]) -> None:
        self.table = table
        self.unacked: list = []  # records processed, acked after the next successful flush
        self.dirty: dict[bytes, int] = {}  # keys changed since the last flush -> their partition
        self._flush_producer = flush_producer
        self._lock = asyncio.Lock()  # one flush stores at a time
        self._changelog_turn = asyncio.Lock()  # ... and changelogs, in the order they stored
        self._processed = self._acked = 0  # records processed / acked since the start
        self._flushes = 0  # flushes that went through
        self._flushes_seen = 0  # ... as of the last flushed_since_asked()

    def __len__(self) -> int:
        return len(self.unacked)

    def processed(self, event) -> None:
        """A record is processed: its outputs are buffered, its ack waits for the flush."""
        self.unacked.append(event)
        self._processed += 1

    def changed(self, key: bytes, partition: int) -> None:
        """``key``'s entry was set in the table's store directly; changelogged at the flush."""
        self.dirty[key] = partition

    def forget(self, key: bytes) -> None:
        """``key`` was removed (and tombstoned): nothing of it to changelog any more."""
        self.dirty.pop(key, None)

    @property
    def flushing(self) -> bool:
        return self._lock.locked()

    def flushed_since_asked(self) -> bool:
        """Whether a flush went through since the last call: the worker's flush timer skips a
        tick that another flush (a failed alert send's retry, a full sink's) did the work of.
        Each flush costs ~70 ms of chDB CPU whatever its size (~100 ms with an alert row): when
        every alert flushed at once, ticks on top of them took a core's fifth at 400 events/s."""
        flushed, self._flushes_seen = self._flushes != self._flushes_seen, self._flushes
        return flushed

    def lowest_unacked(self) -> dict[int, int]:
        """Per partition, the lowest offset still waiting for a flush (one pass)."""
        lowest: dict[int, int] = {}
        for event in self.unacked:
            partition, offset = event.message.partition, event.message.offset
            if offset < lowest.get(partition, offset + 1):
                lowest[partition] = offset
        return lowest

    async def flush(self, store: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Store the outputs (``store()``: False or an exception keeps everything unacked and
        the keys dirty, for the next flush), then changelog the entries as they are now, then
        ack the records processed before the flush began. Returns whether it went through.

        The next flush may store (and send its alerts) while this one changelogs: waiting for
        the broker's acks of the changelog took 0.55 s a flush on average (up to 1.4 s) at 400
        events/s, and an alert raised meanwhile waited for it. Changelogs and acks still go in
        flush order (a flush takes the changelog's turn before it lets the next one store)."""
        async with self._lock:
            upto = self._processed
            # Entries as of now: the outputs of their records are all buffered (outputs go in
            # before entries move), so they are in this flush.
            changed = [(key, partition, self.table.data.get(key)) for key, partition in self.dirty.items()]
            self.dirty.clear()
            try:
                stored = store is None or await store()
            except BaseException:
                self._keep_dirty(changed)
                raise
            if not stored:
                self._keep_dirty(changed)
                return False
            await self._changelog_turn.acquire()
        try:
            await self._changelog(changed)
            self._ack_through(upto)
            self._flushes += 1
            return True
        finally:
            self._changelog_turn.release()

    def _ack_through(self, upto: int) -> None:
        """Ack the records processed before the ``upto``-th (counted since the start)."""
        count = upto - self._acked
        for event in self.unacked[:count]:
            event.ack()
        del self.unacked[:count]
        self._acked = upto

    def _keep_dirty(self, changed: list[tuple[bytes, int, bytes | None]]) -> None:
        for key, partition, _ in changed:
            self.dirty.setdefault(key, partition)

    async def _changelog(self, changed: list[tuple[bytes, int, bytes | None]]) -> None:
        """Changelog records for entries set in the table's store directly (key, partition, value)."""
        last: dict[int, tuple[bytes, bytes]] = {}
        for key, partition, value in changed:
            if value is not None:
                self.table.send_changelog(partition, key, value)
                last[partition] = (key, value)
        if last:
            # A broker that reports a short high watermark (tansu: the first offset of the
            # last batch + 1) makes a restarted worker stop its table recovery early. Seal
            # each partition with a record in a batch of its own (its last key again: a
            # no-op for the table), so the reported end is the true end.
            await self._flush_producer()
            for partition, (key, value) in last.items():
                self.table.send_changelog(partition, key, value)
            await self._flush_producer()


class ChangelogSeals:
    """Changelog partitions written since they were last sealed, for tables that send their
    changelog records as they change (the router's incidents, positions and snoozes).

    A broker that reports a short high watermark (the embedded tansu broker: the first offset
    of the last batch + 1) makes a restarted app stop its table recovery early: two incidents
    opened in the same millisecond went out in one batch, and the router that took over knew
    only the first (CI, test_router_restart: the other incidents were never posted again and
    expired on Alertmanager). :meth:`seal` flushes the producer, then sends each written
    partition's last key again, as the table holds it *now*, in a batch of its own: a no-op for
    the table (the same value, or the same tombstone), and the reported end is the true end.
    Read from the table at the moment it is sent, never from a value kept earlier, so a newer
    write made meanwhile is never overwritten by an older one.

    >>> class Table:
    ...     def __init__(self): self.data, self.sent = {}, []
    ...     def send_changelog(self, partition, key, value): self.sent.append((partition, key, value))
    >>> async def flush(): pass
    >>> incidents, seals = Table(), ChangelogSeals(flush)
    >>> incidents.data[b"a"] = b"open"; seals.written(incidents, 2, b"a")
    >>> incidents.data[b"b"] = b"open"; seals.written(incidents, 2, b"b")
    >>> incidents.data[b"b"] = b"resolved"  # (changed again before the seal)
    >>> import asyncio; asyncio.run(seals.seal()); incidents.sent
    [(2, b'b', b'resolved')]
    >>> asyncio.run(seals.seal()); incidents.sent  # nothing written since
    [(2, b'b', b'resolved')]
    """

    def __init__(self, flush_producer: Callable[[], Awaitable[None]]) -> None:
        self._flush_producer = flush_producer
        self._last: dict[tuple[int, int], tuple[object, bytes]] = {}  # (table, partition) -> (table, last key)

    def written(self, table, partition: int, key: bytes) -> None:
        """``key``'s changelog record was sent to ``partition`` (bounded: one entry a partition)."""
        self._last[(id(table), partition)] = (table, key)

    async def seal(self) -> None:
        if not self._last:
            return
        last, self._last = self._last, {}
        try:
            await self._flush_producer()
            for (_, partition), (table, key) in last.items():
                table.send_changelog(partition, key, table.data.get(key))
            await self._flush_producer()
        except BaseException:
            for slot, entry in last.items():
                self._last.setdefault(slot, entry)  # sealed next time (a newer write there stands)
            raise
