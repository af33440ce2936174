"""The one way the worker steps input records and keeps what they produce, direct or packed.

A mixin of :class:`~distillguard.streams.app.DetectorWorker` (needs its ``settings``,
``processor``, ``sink``, ``metrics``, ``key_state``, ``checkpoint``, ``last_seen``,
``add_to_sink``, ``send_dead_letter``, ``send_link_record``, ``raise_alerts`` and, with the link-values
stage, ``values_sent_to``). A record of
``llm.requests`` read directly is a batch of one; an envelope (streams/packed_input.py) a
batch of its records: both go through ``RequestProcessor.run`` and :meth:`step_records`, so
the two paths store, alert, link and count alike by construction.
"""
from __future__ import annotations

import time

from distillguard.models.step import BatchResult, Record


class _StatesByKeyId:
    """The state table seen by api_key_id (what ``RequestProcessor.run`` looks states up by)."""

    __slots__ = ("table",)

    def __init__(self, table) -> None:
        self.table = table

    def get(self, api_key_id: str, default=None):
        return self.table.get(api_key_id.encode("utf-8", "surrogatepass"), default)


class RecordStep:
    """Step records (positioned already) and buffer their outputs before their states move on."""

    async def step_records(self, records: list[Record], partition: int) -> None:
        before = self._tallies()
        result = self.processor.run(records, _StatesByKeyId(self.key_state))
        await self._store_batch(result, partition)
        self._count_batch(before)

    def count_duplicate_read(self) -> None:
        """A delivery not stepped: a new epoch began at its record, which the epoch read back and
        stepped (streams/input_log.py ``begin_epoch``)."""
        self.processor.counters.events += 1
        self.processor.counters.duplicates += 1
        self.metrics.duplicates.inc()

    async def _store_batch(self, result: BatchResult, partition: int) -> None:
        """Outputs first (every await is here), then the states: with no await after them, a
        state reaching the changelog never covers a record whose outputs are not written."""
        sink, topic = self.sink, self.settings.requests_topic
        for dead in result.dead_letters:
            await self.send_dead_letter(dead)
        for row, row_partition, position in result.rows:
            await self.add_to_sink(sink.add, row, row_partition, position, topic)
        await self.raise_alerts(result.alerts)
        cohorts = not self.settings.link_values_partitioned  # (that stage runs no cohort detector)
        for link in result.links:
            if cohorts or not link.cohort_only:
                await self.send_link_record(link, partition)
        if result.rows and self.settings.link_values_partitioned:
            # How far this partition has sent link values (ClusterStage.send_link_progress): up
            # to every record stepped, whether it had values to send or not (ordinary traffic
            # has none, and must not hold new incidents back).
            newest = max(row["ts_ms"] for row, _, _ in result.rows)
            self.values_sent_to[partition] = max(self.values_sent_to.get(partition, -1), newest)
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
        """The batch's share of the processor's counters, as metrics."""
        processed, duplicates, late, clamped = before
        counters, metrics = self.processor.counters, self.metrics
        metrics.events_tally += counters.processed - processed
        if counters.duplicates > duplicates:
            metrics.duplicates.inc(counters.duplicates - duplicates)
        if counters.late > late:
            metrics.late.inc(counters.late - late)
        for name, count in counters.clamped_fields.items():
            if count > clamped.get(name, 0):
                metrics.clamped.labels(field=name).inc(count - clamped.get(name, 0))
