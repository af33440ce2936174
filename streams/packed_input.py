"""The worker's packed input: a batch envelope (streams/envelope.py) stepped in one call.

A mixin of :class:`~distillguard.streams.app.DetectorWorker` (needs its ``settings``,
``processor``, ``sink``, ``metrics``, ``epochs``, ``key_state``, ``checkpoint``, ``outbox``,
``last_seen``, ``source_next``, ``add_to_sink``, ``send_dead_letter``, ``send_link_record``,
``suppressed``, ``flush``, ``record_event_id`` and ``_stored_record``).

Holes, epochs' hole fill and acks stay per Kafka message (the envelope); each record inside is
positioned at its offset in the source partition, as if the worker had read ``llm.requests``
itself: rows, dead letters and the key state's duplicate test are the direct path's, so a
deployment can switch between the two and an envelope packed twice (a packer killed before
its commit) is recognised record by record.
"""
from __future__ import annotations

import asyncio
import logging

from distillguard.models.step import DeadLetter

from .envelope import EnvelopeError, unpack
from .epochs import NEW
from .record_step import RecordStep

log = logging.getLogger(__name__)


class PackedInput(RecordStep):
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
        self._mark_applied_before(records, message.partition)
        await self.step_records(records, message.partition)
        if envelope.records:
            self.source_next[message.partition] = envelope.records[-1].offset + 1
        # One envelope is ~500 steps of CPU with no await that suspends: without a turn of the
        # loop between envelopes a backlog kept the flush and the timers waiting (a 0.5 s timer
        # ran 18 s late, rows and alerts with it).
        await asyncio.sleep(0)

    def _mark_applied_before(self, records: list, partition: int) -> None:
        """Records of a new log that the worker stored under the previous epoch, having read
        them at its old position before the log was found replaced, are marked applied: they
        only move their keys' positions (as on the direct path: streams/input_log.py)."""
        if not self.epochs.carrying(partition):
            return
        for record in records:
            record.applied = self.epochs.stored_before(partition, record.offset, self.record_event_id(record.value))

    async def _check_source_log(self, first, stored: int) -> None:
        """Whether ``llm.requests`` was replaced under the packer (a broker back empty, the topic
        recreated): its first record at or below what is stored is compared with the row stored
        at its position, as the direct path does (streams/epochs.py). A different record begins
        the partition's next epoch here; the packer, its group's commits gone with the old log,
        hands the new log on from its start, so nothing needs reading back. A partition
        ``verify_input_logs`` found replaced was rewound to the packed topic's start: that topic
        may still hold envelopes of the old log, so content decides there too."""
        partition, epochs = first.partition, self.epochs
        epochs.rewound(partition)
        if not epochs.needs_check(partition, first.offset, stored):
            return
        found = await self._stored_record(self.settings.requests_topic, partition,
                                          epochs.position(partition, first.offset, stored))
        if epochs.decide(partition, first.offset, found, self.record_event_id(first.value)) == NEW:
            new = epochs.begin_epoch(partition, first.offset, stored)
            log.warning("partition %s of %s: offset %s holds another record than the one stored: the log was "
                        "replaced; epoch %s starts", partition, self.settings.requests_topic, first.offset, new.epoch)
            self.metrics.epochs.labels(topic=self.settings.requests_topic, partition=str(partition)).inc()
            # (the offsets this worker had handed on from the partition: what it processed)
            await self.carry_from_old_epoch(self.settings.requests_topic, new, self.source_next.get(partition))

    async def _dead_letter_cut(self, record, size: int) -> None:
        """A record the packer cut to a prefix (over what one envelope carries): dead-lettered
        with its size, as the direct path does a record over the dead-letter limit."""
        processor = self.processor
        processor.counters.events += 1
        processor.counters.dead_letters += 1
        await self.send_dead_letter(DeadLetter(f"too big to pack: {size} bytes", record.value or b"", record.key,
                                               processor.source_topic, record.partition, record.offset, size)
                                    .truncated(self.settings.dlq_max_bytes))
