"""The worker's packed input: a batch envelope (streams/envelope.py) stepped in one call.

A mixin of :class:`~distillguard.streams.app.DetectorWorker` (needs its ``settings``,
``processor``, ``sink``, ``metrics``, ``epochs``, ``key_state``, ``checkpoint``, ``outbox``,
``last_seen``, ``add_to_sink``, ``send_dead_letter``, ``send_link_record``, ``suppressed`` and
``_stored_record``).

Holes, epochs' hole fill and acks stay per Kafka message (the envelope); each record inside is
positioned at its offset in the source partition, as if the worker had read ``llm.requests``
itself: rows, dead letters and the key state's duplicate test are the direct path's, so a
deployment can switch between the two and an envelope packed twice (a packer killed before
its commit) is recognised record by record.
"""
from __future__ import annotations

import asyncio
import logging
import time

from distillguard.models.events import parse_event
from distillguard.models.step import BatchResult, DeadLetter

from .envelope import EnvelopeError, unpack
from .epochs import NEW

log = logging.getLogger(__name__)


class _StatesByKeyId:
    """The state table seen by api_key_id (what ``RequestProcessor.run`` looks states up by)."""

    __slots__ = ("table",)

    def __init__(self, table) -> None:
        self.table = table

    def get(self, api_key_id: str, default=None):
        return self.table.get(api_key_id.encode("utf-8", "surrogatepass"), default)


class PackedInput:
    """Envelopes of the packed topic (DG_READ_PACKED)."""

    async def handle_envelope(self, event) -> None:
        """Step every record of one envelope with one ``RequestProcessor.run``; a malformed
        envelope is one dead letter, a bad record inside it its own."""
        message = event.message
        try:
            envelope = unpack(message.value, partition=message.partition)
        except EnvelopeError as exc:
            await self.send_dead_letter(DeadLetter(str(exc), message.value or b"", message.key, message.topic,
                                                   message.partition, message.offset)
                                        .truncated(self.settings.dlq_max_bytes))
            return
        stored = self.sink.stored_position(self.settings.requests_topic, message.partition)
        if envelope.records:
            await self._check_source_log(envelope.records[0], stored)
        for record in envelope.records:
            record.position = self.epochs.position(record.partition, record.offset, stored)
        for index, size in envelope.truncated.items():
            await self._dead_letter_cut(envelope.records[index], size)
        records = [r for i, r in enumerate(envelope.records) if i not in envelope.truncated]
        before = self._tallies()
        result = self.processor.run(records, _StatesByKeyId(self.key_state))
        await self._store_batch(result, message.partition)
        self._count_batch(before)
        # One envelope is ~500 steps of CPU with no await that suspends: without a turn of the
        # loop between envelopes a backlog kept the flush and the timers waiting (a 0.5 s timer
        # ran 18 s late, rows and alerts with it).
        await asyncio.sleep(0)

    async def _check_source_log(self, first, stored: int) -> None:
        """Whether ``llm.requests`` was replaced under the packer (a broker back empty, the topic
        recreated): its first record at or below what is stored is compared with the row stored
        at its position, as the direct path does (streams/epochs.py). A different record begins
        the partition's next epoch here; the packer, its group's commits gone with the old log,
        hands the new log on from its start, so nothing needs reading back."""
        partition, epochs = first.partition, self.epochs
        if not epochs.needs_check(partition, first.offset, stored):
            return
        found = await self._stored_record(self.settings.requests_topic, partition,
                                          epochs.position(partition, first.offset, stored))
        event_id = getattr(parse_event(first.value) if first.value is not None else None, "event_id", None)
        if epochs.decide(partition, first.offset, found, event_id) == NEW:
            new = epochs.begin_epoch(partition, first.offset, stored)
            log.warning("partition %s of %s: offset %s holds another record than the one stored: the log was "
                        "replaced; epoch %s starts", partition, self.settings.requests_topic, first.offset, new.epoch)
            self.metrics.epochs.labels(topic=self.settings.requests_topic, partition=str(partition)).inc()

    async def _dead_letter_cut(self, record, size: int) -> None:
        """A record the packer cut to a prefix (over what one envelope carries): dead-lettered
        with its size, as the direct path does a record over the dead-letter limit."""
        processor = self.processor
        processor.counters.events += 1
        processor.counters.dead_letters += 1
        await self.send_dead_letter(DeadLetter(f"too big to pack: {size} bytes", record.value or b"", record.key,
                                               processor.source_topic, record.partition, record.offset, size)
                                    .truncated(self.settings.dlq_max_bytes))

    async def _store_batch(self, result: BatchResult, partition: int) -> None:
        """Outputs first (every await is here), then the states: with no await after them, a
        state reaching the changelog never covers a record whose outputs are not written."""
        sink, topic = self.sink, self.settings.requests_topic
        for dead in result.dead_letters:
            await self.send_dead_letter(dead)
        for row, row_partition, position in result.rows:
            await self.add_to_sink(sink.add, row, row_partition, position, topic)
        for alert in result.alerts:
            if not self.suppressed(alert):
                await self.add_to_sink(sink.add_alert, alert)
                self.outbox.add(alert["entity_id"].encode("utf-8", "surrogatepass"), alert)
        for link in result.links:
            await self.send_link_record(link)
        now = time.monotonic()
        for api_key_id, state in result.states.items():
            state_key = api_key_id.encode("utf-8", "surrogatepass")
            self.key_state.data[state_key] = state
            self.checkpoint.changed(state_key, partition)
            self.last_seen[state_key] = (now, partition)

    def _tallies(self) -> tuple:
        counters = self.processor.counters
        return counters.processed, counters.duplicates, counters.late, dict(counters.clamped_fields)

    def _count_batch(self, before: tuple) -> None:
        """The batch's share of the processor's counters, as metrics (the direct path counts per record)."""
        processed, duplicates, late, clamped = before
        counters, metrics = self.processor.counters, self.metrics
        metrics.events_tally += counters.processed - processed
        metrics.duplicates.inc(counters.duplicates - duplicates)
        metrics.late.inc(counters.late - late)
        for name, count in counters.clamped_fields.items():
            if count > clamped.get(name, 0):
                metrics.clamped.labels(field=name).inc(count - clamped.get(name, 0))
