"""The worker's view of its input partitions: holes filled and new logs (epochs) detected.

The rules live in :mod:`~distillguard.streams.holes` and :mod:`~distillguard.streams.epochs`
(issue #17); this mixin of :class:`~distillguard.streams.app.DetectorWorker` does their I/O:
reading records back from the broker, asking the sink what it stored, seeking.
"""
from __future__ import annotations

import asyncio
import logging
import time

from distillguard.models.events import RequestEvent, parse_event

from .epochs import NEW
from .faust_compat import faust_commit, paused_partitions, seek_in_consumer_thread
from .holes import read_first_records, read_group_commit, read_partition

log = logging.getLogger(__name__)

MAX_HOLE_FILL = 50_000  # records read back at most for one hole


class FilledEvent:
    """A record read back from the broker to fill a hole, acked like a stream event."""

    __slots__ = ("message", "_app")

    def __init__(self, message, app) -> None:
        self.message = message
        self._app = app

    def ack(self) -> bool:
        return self._app.consumer.ack(self.message)


class InputLog:
    """Holes and epochs of the input partitions (a mixin: needs the worker's ``app``,
    ``settings``, ``sink``, ``metrics``, ``holes``, ``epochs``, ``progress``, ``input_turn``,
    ``process`` and ``flush``)."""

    async def place_record(self, record, message) -> bool:
        """Set the record's position in its partition's current epoch, and whether its event was
        applied already (stored under the previous epoch: ``Record.applied``). False when a new
        epoch begins at this record (it differs from the one stored at its offset): the epoch
        read it back from the broker and stepped it, this delivery is done."""
        epochs = self.epochs
        partition, offset = message.partition, message.offset
        stored = self.sink.stored_position(message.topic, partition)
        if epochs.replaced(partition):  # seen by verify_input_logs
            await self.begin_epoch(message, stored)
            return False
        if epochs.needs_check(partition, offset, stored):
            found = await self._stored_record(message.topic, partition, epochs.position(partition, offset, stored))
            if epochs.decide(partition, offset, found, self.record_event_id(message.value)) == NEW:
                await self.begin_epoch(message, stored)
                return False
        record.applied = (epochs.carrying(partition)
                          and epochs.stored_before(partition, offset, self.record_event_id(message.value)))
        record.position = epochs.position(partition, offset, stored)
        return True

    async def carry_from_old_epoch(self, topic: str, new, processed_until: int | None) -> None:
        """The event ids stored under the previous epoch at the offsets this worker had
        processed from the partition (``processed_until``: the next one it expected): records
        of the new log read at the old position (see :meth:`EpochTracker.carry`)."""
        carry = self.epochs.carry_range(new, processed_until)
        if carry is None:
            return
        # rows of the new log read under the old epoch: in ClickHouse, to be found (a failed
        # flush would leave them buffered, and their records would be applied twice)
        await self.flush_until_stored()
        self.epochs.carry(new.partition, await asyncio.to_thread(
            self.sink.stored_event_ids, topic, new.partition, new.epoch - 1, *carry), carry[1])

    async def flush_until_stored(self) -> None:
        """Flush until one goes through, for what reads the rows back from ClickHouse next: a
        flush that fails (alerts not sent while the broker comes back, ClickHouse down) keeps
        its rows buffered, and the rows looked for would not be found."""
        while not await self.flush():
            await asyncio.sleep(self.sink.settings.retry_after_s)

    def record_event_id(self, value: bytes | None) -> str | None:
        """The event id of a record the worker would store as a row; None for one it would
        dead-letter (what the epochs compare with the row or dead letter stored). Parsed only
        where a comparison needs it: the step parses every record anyway."""
        parsed = self.processor.parse(value)
        return parsed.event_id if isinstance(parsed, RequestEvent) else None

    async def _stored_record(self, topic: str, partition: int, position: int):
        # ClickHouse unreachable: wait (back-pressure), never guess "duplicate" or "new log".
        while True:
            try:
                return await asyncio.to_thread(self.sink.stored_at, topic, partition, position)
            except Exception as exc:  # noqa: BLE001 - retried; /health reports the stalled commits
                log.warning("cannot read the stored record of %s:%s, will retry: %s", partition, position,
                            type(exc).__name__)
                await asyncio.sleep(self.sink.settings.retry_after_s)

    async def begin_epoch(self, message, stored: int) -> None:
        """Begin the partition's next epoch: its new log is read back from its start through
        this record (and on to what the group committed on it: Faust seeks there, and would
        not hand those records over again) and processed in order; this delivery is done."""
        processed_until = self.holes.expected(message.partition)
        new = self.epochs.begin_epoch(message.partition, message.offset, stored)
        log.warning("partition %s of %s: offset %s holds another record than the one stored (stored up to offset "
                    "%s): the log was replaced (broker restarted empty or topic recreated); epoch %s starts",
                    message.partition, message.topic, message.offset, new.stored_offset, new.epoch)
        self.metrics.epochs.labels(topic=message.topic, partition=str(message.partition)).inc()
        await self.carry_from_old_epoch(message.topic, new, processed_until)
        start, committed = new.refill_from, self.partition_start(message.tp)
        end = max(message.offset + 1, min(committed, message.offset + 1 + MAX_HOLE_FILL))
        self.holes.restart(message.partition, start)
        # The new log's records before this one went by as re-reads (undecided) or never
        # reached the agent; those after it up to the commit would not be handed over again.
        for record in await self._read_back(message.partition, start, end):
            await self.process(FilledEvent(record, self.app))

    async def _read_back(self, partition: int, start: int, end: int) -> list:
        """Records ``start .. end - 1`` of an input partition (envelopes with DG_READ_PACKED), read
        from the broker."""
        settings = self.settings
        records, complete = await asyncio.to_thread(
            read_partition, settings.confluent_config(), f"{settings.app_id}-hole-fill", settings.input_topic,
            partition, start, end)
        if not complete:
            log.error("partition %s: reading offsets %s..%s back timed out (%d read)", partition, start, end - 1,
                      len(records))
            self.metrics.hole_errors.inc()
        return records

    async def fill_hole(self, message) -> None:
        """Process the records missing before ``message`` (read from the broker), in order."""
        start = self.holes.expected(message.partition)
        if message.offset - start > MAX_HOLE_FILL:
            # Most likely the partition was away (another worker moved it on): what the group
            # has committed is done; read only what lies beyond it.
            start = max(start, self.partition_start(message.tp))
            if start >= message.offset:
                return
        partition, end = message.partition, message.offset
        records = await self._read_back(partition, start, end)
        if records:
            log.warning("records %s..%s of partition %s never reached the worker: read %d back from the broker",
                        start, end - 1, partition, len(records))
            self.metrics.holes.inc(len(records))
        for record in records:
            await self.process(FilledEvent(record, self.app))

    async def refill_trailing_holes(self) -> None:
        """Read back the records of a partition that Faust hands nothing more of.

        A hole is seen when a record beyond it arrives (:meth:`fill_hole`); one at the end of
        a partition is revealed by nothing. After a broker restart Faust was seen to hand no
        more records of one partition at all (its fetch loop drops records below the offset
        it last handed out, and the new log's were): the partition stayed behind until
        /health reported it stalled. A partition with records beyond the last one processed,
        nothing of it processed for DG_REFILL_AFTER_S, not paused, no table recovery running
        and ClickHouse taking rows has them read from the broker and processed. Should Faust
        hand them over later after all, they are re-deliveries: the key states and the sink's
        watermark drop them (at least once, as after any rebalance)."""
        now, after = time.monotonic(), self.settings.refill_after_s
        if self.sink_failing_since() is not None or self.app.tables.recovery.in_recovery:
            return
        consumer = self.app.consumer
        try:
            paused = paused_partitions(consumer)
            waiting = [(tp, consumer.highwater(tp)) for tp in consumer.assignment()
                       if tp.topic == self.settings.input_topic and tp not in paused]
        except Exception:  # noqa: BLE001 - mid-rebalance: the next tick looks again
            return
        for tp, high in waiting:
            # (progress: the partition's next offset as the gauges last saw it, and since when;
            # the group's commit for a partition nothing of which has arrived yet)
            moved = self.progress.get(tp.partition)
            if moved is None or high is None or high <= moved[0] or now - moved[1] < after:
                continue
            async with self.input_turn:
                try:
                    await self._refill(tp, moved, now)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the broker could not be read: logged, counted, retried
                    log.exception("partition %s: the records waiting beyond offset %s were not read back",
                                  tp.partition, moved[0])
                    self.metrics.hole_errors.inc()
            # (the next try waits another DG_REFILL_AFTER_S)
            self.progress[tp.partition] = (self.holes.expected(tp.partition), time.monotonic())

    async def _refill(self, tp, moved: tuple[int, float], now: float) -> None:
        """Read a partition's records from its next offset on and process them (input_turn held)."""
        if not self.holes.known(tp.partition):
            self.holes.start(tp.partition, await self.first_offset_of(tp))
        expected = self.holes.expected(tp.partition)
        if expected != moved[0]:
            return  # the stream moved on meanwhile
        # (to the partition's end: a broker may report a high watermark short of it)
        records = await self._read_back(tp.partition, expected, expected + MAX_HOLE_FILL)
        if records:
            log.warning("partition %s: records %s..%s waited %.0fs beyond the last one processed and none was "
                        "handed over: read %d back from the broker", tp.partition, expected, records[-1].offset,
                        now - moved[1], len(records))
            self.metrics.holes.inc(len(records))
        for record in records:
            if self.app.tables.recovery.in_recovery or tp not in self.app.consumer.assignment():
                return  # a rebalance began: the partition's new owner (or recovery) goes on
            await self.process(FilledEvent(record, self.app))

    async def first_offset_of(self, tp) -> int:
        """Where the group resumes a partition whose first record has just arrived.

        Faust learns the commits in its seek after table recovery, yet a partition can hand
        over records before that seek (seen on restarts with static membership): taken as "no
        commit", the whole partition before its first record was read back as a hole (up to
        20k records a restart, so a crash-looping worker made no progress). Not known to
        Faust: asked of the broker.
        """
        committed = faust_commit(self.app.consumer, tp)
        if committed is not None:
            return committed
        try:
            return await asyncio.to_thread(read_group_commit, self.settings.confluent_config(), self.settings.app_id,
                                           tp.topic, tp.partition)
        except Exception as exc:  # noqa: BLE001 - the broker could not say: read from the start (safe)
            log.warning("partition %s: the group's commit could not be read (%s): checking it from offset 0",
                        tp.partition, type(exc).__name__)
            return 0

    async def verify_input_logs(self) -> None:
        """Compare each input partition's record at a reference offset with the row stored
        from it: a different one means the log was replaced under this worker (its fetch
        position still valid in the new log, so no offset went backwards). The partition is
        rewound; its next record begins the new epoch (streams/epochs.py)."""
        try:
            references = await self._log_references()
            if not references:
                return
            settings = self.settings
            found = await asyncio.to_thread(
                read_first_records, settings.confluent_config(), f"{settings.app_id}-epoch-check",
                settings.requests_topic, {tp.partition: offset for tp, (offset, _) in references.items()})
            for tp, (offset, event_id) in references.items():
                await self._compare_reference(tp, offset, event_id, *found.get(tp.partition, (None, None)))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a check must not stop the worker; retried on the next tick
            log.warning("input log check failed", exc_info=True)

    async def _log_references(self) -> dict:
        """Per assigned input partition not already found replaced: its reference (offset,
        event id); partitions with none yet take one (compared from the next tick on)."""
        # (the packed topic's partitions carry those of llm.requests of the same number)
        assigned = [tp for tp in self.app.consumer.assignment() if tp.topic == self.settings.input_topic]
        references = {}
        for tp in assigned:
            reference = self.epochs.reference(tp.partition)
            if reference is None:
                await self._take_reference(tp, 0)
            elif not self.epochs.replaced(tp.partition):
                references[tp] = reference
        return references

    async def _compare_reference(self, tp, offset: int, event_id, at, value) -> None:
        if at is None:
            return  # an empty log: its first record shows offsets going back
        if at > offset:
            await self._take_reference(tp, at)  # removed by retention: the first one left
            return
        # at < offset: the log now ends before the reference (read from its start)
        now = parse_event(value) if value is not None and at == offset else None
        # (the reference is dropped when an epoch begins: then offsets went back meanwhile)
        if getattr(now, "event_id", None) != event_id and self.epochs.reference(tp.partition) == (offset, event_id):
            await self._rewind_replaced(tp, offset)

    async def _take_reference(self, tp, from_offset: int) -> None:
        # The lowest row stored of the epoch: any new log that has records at all has one
        # there (a reference near the end may lie beyond a shorter new log, where tansu
        # answers a fetch with nothing rather than an out-of-range error).
        topic = self.settings.requests_topic  # (rows name it, whichever topic the worker reads)
        stored = self.sink.stored_position(topic, tp.partition)
        if stored >= 0:
            first = await asyncio.to_thread(self.sink.first_row, topic, tp.partition,
                                            self.epochs.epoch(tp.partition, stored), from_offset)
            self.epochs.set_reference(tp.partition, *(first or (from_offset, None)))

    async def _rewind_replaced(self, tp, offset: int) -> None:
        log.warning("partition %s of %s: the broker holds another record at offset %s than the one stored: the "
                    "log was replaced (broker restarted empty or topic recreated); reading %s from its start",
                    tp.partition, self.settings.requests_topic, offset, tp.topic)
        self.epochs.mark_replaced(tp.partition)
        await seek_in_consumer_thread(self.app.consumer, tp, 0)
