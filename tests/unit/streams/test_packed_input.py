"""The worker's packed input: one envelope stepped in one batch, records positioned at their source
offsets (so a re-packed envelope is recognised), bad records and bad envelopes dead-lettered."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from distillguard.models.pipeline import KeyPipeline
from distillguard.models.positions import StoredRecord, epoch_of, offset_of, position
from distillguard.models.step import RequestProcessor
from distillguard.streams.envelope import pack
from distillguard.streams.epochs import EpochTracker
from distillguard.streams.input_log import InputLog
from distillguard.streams.packed_input import PackedInput


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n

    def labels(self, **_):
        return self


class _Sink:
    settings = SimpleNamespace(retry_after_s=0.01)

    def __init__(self) -> None:
        self.rows, self.alerts = [], []

    stored_up_to, stored_records = -1, {}  # the position stored up to; position -> StoredRecord

    def stored_position(self, topic, partition) -> int:
        return self.stored_up_to

    def stored_at(self, topic, partition, pos):
        return self.stored_records.get(pos)

    def stored_event_ids(self, topic, partition, epoch, first, end) -> dict[int, str]:
        return {offset_of(p): r.event_id for p, r in self.stored_records.items()
                if epoch_of(p) == epoch and first <= offset_of(p) < end and r.kind == "row"}

    def add(self, row, partition, offset, topic) -> bool:
        self.rows.append((row["event_id"], partition, offset, topic))
        return True

    def add_alert(self, alert) -> None:
        self.alerts.append(alert)


class _Table:
    def __init__(self) -> None:
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)


class Harness(PackedInput):
    """The collaborators DetectorWorker gives the mixin, in memory."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(requests_topic="llm.requests", dlq_max_bytes=900_000,
                                        link_values_partitioned=True)
        self.values_sent_to = {}
        self.processor = RequestProcessor(KeyPipeline(), source_topic="llm.requests")
        self.sink, self.key_state, self.epochs = _Sink(), _Table(), EpochTracker()
        self.metrics = SimpleNamespace(events_tally=0, duplicates=_Counter(), late=_Counter(), clamped=_Counter(),
                                       epochs=_Counter())
        self.checkpoint = SimpleNamespace(dirty={})
        self.checkpoint.changed = lambda key, partition: self.checkpoint.dirty.__setitem__(key, partition)
        self.last_seen, self.dead, self.links, self.source_next = {}, [], [], {}
        self.alerts = []
        self.flushes = 0

    record_event_id = InputLog.record_event_id
    flush_until_stored = InputLog.flush_until_stored
    carry_from_old_epoch = InputLog.carry_from_old_epoch
    failing_flushes = 0  # flushes that fail (and store nothing) before one goes through
    buffered: dict = {}  # position -> StoredRecord: rows the next flush that goes through stores

    async def flush(self) -> bool:
        self.flushes += 1
        if self.failing_flushes:
            self.failing_flushes -= 1
            return False
        self.sink.stored_records.update(self.buffered)
        self.buffered = {}
        return True

    async def _stored_record(self, topic, partition, pos):
        return self.sink.stored_at(topic, partition, pos)

    async def add_to_sink(self, add, *args) -> None:
        add(*args)

    async def send_dead_letter(self, dead) -> None:
        self.dead.append(dead)

    async def send_link_record(self, rec, partition: int = -1) -> None:
        self.links.append(rec)

    async def raise_alerts(self, alerts) -> None:
        self.alerts.extend(alerts)

    def take(self, value: bytes, partition: int = 2, offset: int = 0) -> None:
        message = SimpleNamespace(value=value, key=str(partition).encode(), partition=partition, offset=offset,
                                  topic="llm.requests.packed")
        asyncio.run(self.handle_envelope(SimpleNamespace(message=message)))


def event(event_id: str, key: str) -> bytes:
    return json.dumps({"schema": "llm.request.v1", "event_id": event_id, "ts": "2026-02-01T00:00:00Z",
                       "api_key_id": key, "account_id": "a1", "model": "m", "prompt": "hello there"}).encode()


RECORDS = [(b"k1", event("e1", "k1"), 100), (b"k2", event("e2", "k2"), 101), (b"k1", b"{oops", 102),
           (b"k1", event("e3", "k1"), 104)]


def test_records_are_stored_at_their_source_offsets_and_states_set_once_per_key():
    worker = Harness()
    worker.take(pack(2, RECORDS), offset=7)
    assert worker.sink.rows == [("e1", 2, 100, "llm.requests"), ("e2", 2, 101, "llm.requests"),
                                ("e3", 2, 104, "llm.requests")]
    assert [(d.reason[:8], d.source_topic, d.partition, d.offset, d.value) for d in worker.dead] == [
        ("not JSON", "llm.requests", 2, 102, b"{oops")]
    assert set(worker.key_state.data) == {b"k1", b"k2"} and worker.checkpoint.dirty == {b"k1": 2, b"k2": 2}
    assert worker.metrics.events_tally == 3 and worker.processor.counters.events == 4
    # how far partition 2 has sent its link values (the link-values stage's progress markers):
    # its newest record stepped, though none of these sent a link value; their link records
    # (the keys' first requests: the cohort detector's only, which that stage does not run)
    # are not sent either
    assert worker.values_sent_to == {2: 1_769_904_000_000} and not worker.links


def test_an_envelope_packed_again_is_recognised_record_by_record():
    worker = Harness()
    worker.take(pack(2, RECORDS[:2]), offset=7)
    # A packer killed before its commit packs the same records again, with one more.
    worker.take(pack(2, RECORDS[:2] + RECORDS[3:]), offset=8)
    assert [row[0] for row in worker.sink.rows] == ["e1", "e2", "e3"]
    assert worker.metrics.duplicates.value == 2


def test_positions_carry_the_partitions_epoch():
    worker = Harness()
    worker.sink.stored_up_to = position(3, 50)  # stored in epoch 3 already
    worker.take(pack(2, RECORDS[:1]))
    assert worker.sink.rows == [("e1", 2, position(3, 100), "llm.requests")]


def test_a_replaced_source_log_begins_a_new_epoch():
    # Offsets up to 200 stored; the packer now hands on a new log from offset 100, where the
    # row stored is of another event: the log was replaced (broker back empty).
    worker = Harness()
    worker.sink.stored_up_to = position(0, 200)
    worker.sink.stored_records = {position(0, 100): StoredRecord("row", "old-event")}
    worker.take(pack(2, RECORDS))
    assert [row[2] for row in worker.sink.rows] == [position(1, 100), position(1, 101), position(1, 104)]
    assert worker.metrics.epochs.value == 1


def test_a_re_read_of_the_same_log_stays_in_its_epoch():
    worker = Harness()
    worker.sink.stored_up_to = position(0, 200)
    worker.sink.stored_records = {position(0, 100): StoredRecord("row", "e1")}
    worker.take(pack(2, RECORDS))
    assert [row[2] for row in worker.sink.rows] == [100, 101, 104] and worker.metrics.epochs.value == 0


def test_a_malformed_envelope_is_one_dead_letter_of_the_packed_message():
    worker = Harness()
    worker.take(b'{"schema":"llm.request.batch.v1","partition":2,"offsets":[5,4],"events":[{},{}]}', offset=9)
    assert [(d.source_topic, d.partition, d.offset) for d in worker.dead] == [("llm.requests.packed", 2, 9)]
    assert "not strictly increasing" in worker.dead[0].reason
    assert worker.sink.rows == [] and worker.key_state.data == {}


def test_a_record_cut_by_the_packer_is_dead_lettered_with_its_size():
    worker = Harness()
    worker.take(pack(2, [(b"k1", event("e1", "k1") + b" " * 3000, 100), RECORDS[1]], max_item_bytes=1024))
    assert [(d.reason, d.offset, d.size, len(d.value)) for d in worker.dead] == [
        ("too big to pack: %d bytes" % (len(event("e1", "k1")) + 3000), 100, len(event("e1", "k1")) + 3000, 1024)]
    assert [row[0] for row in worker.sink.rows] == ["e2"]


def test_records_of_the_new_log_stored_under_the_old_epoch_are_not_stored_again():
    # The old log was stored up to offset 1; the broker came back empty and the worker, its
    # fetch position still valid, read the new log's offsets 2..3 and stored them under epoch 0.
    # verify_input_logs rewound the partition: offset 0 now differs from the row stored there,
    # epoch 1 begins, and offsets 2..3 (their event ids stored already) are not stored again.
    worker = Harness()
    worker.sink.stored_up_to = position(0, 3)
    worker.sink.stored_records = {position(0, 0): StoredRecord("row", "old-0"),
                                  position(0, 1): StoredRecord("row", "old-1"),
                                  position(0, 2): StoredRecord("row", "new-2"),
                                  position(0, 3): StoredRecord("row", "new-3")}
    worker.source_next[2] = 4  # handed on up to offset 3 before
    worker.epochs.mark_replaced(2)
    worker.take(pack(2, [(b"k1", event(f"new-{i}", "k1"), i) for i in range(6)]), offset=0)
    assert worker.metrics.epochs.value == 1 and worker.flushes == 1
    assert [(row[0], row[2]) for row in worker.sink.rows] == [
        ("new-0", position(1, 0)), ("new-1", position(1, 1)), ("new-4", position(1, 4)), ("new-5", position(1, 5))]
    assert worker.metrics.duplicates.value == 2


def test_records_read_under_the_old_epoch_are_found_when_the_first_flush_fails():
    # As above, but the rows of offsets 2..3 are still buffered when the epoch begins, and the
    # first flush fails (the broker just came back: alerts cannot be sent yet). The carry must
    # wait for a flush that goes through, or it finds no row and the records are applied twice.
    worker = Harness()
    worker.sink.stored_up_to = position(0, 1)
    worker.sink.stored_records = {position(0, 0): StoredRecord("row", "old-0"),
                                  position(0, 1): StoredRecord("row", "old-1")}
    worker.buffered = {position(0, 2): StoredRecord("row", "new-2"), position(0, 3): StoredRecord("row", "new-3")}
    worker.failing_flushes = 2
    worker.source_next[2] = 4
    worker.epochs.mark_replaced(2)
    worker.take(pack(2, [(b"k1", event(f"new-{i}", "k1"), i) for i in range(6)]), offset=0)
    assert worker.flushes == 3
    assert [row[0] for row in worker.sink.rows] == ["new-0", "new-1", "new-4", "new-5"]
    assert worker.metrics.duplicates.value == 2


def test_a_partition_rewound_after_verify_input_logs_is_decided_by_content():
    # verify_input_logs found llm.requests replaced and rewound the packed topic, which still
    # holds envelopes of the old log: they are the old log's records (duplicates), not a new epoch.
    worker = Harness()
    worker.sink.stored_up_to = position(0, 200)
    worker.sink.stored_records = {position(0, 100): StoredRecord("row", "e1")}
    worker.epochs.mark_replaced(2)
    worker.take(pack(2, RECORDS))
    assert worker.metrics.epochs.value == 0 and not worker.epochs.replaced(2)
    assert [row[2] for row in worker.sink.rows] == [100, 101, 104]


def test_records_applied_under_the_old_epoch_stay_applied_once_when_delivered_again():
    # k2's request at new-log offsets 10 and 11 were read at the old fetch position and applied
    # under epoch 0, before its ten earlier ones (offsets 0..9) are read in epoch 1: by then its
    # event-id ring (8) no longer holds them. After the carry is passed (offset 12), Faust
    # delivers 10 and 11 again (a rewound partition handed on again, a rejoin reading from the
    # start): they must be duplicates by the key's position (they were applied twice: CI saw
    # a key learn 14 events of the 12 it sent).
    worker = Harness()
    old = [(b"k1", event(f"old-{i}", "k1"), i) for i in range(10)]
    new = [(b"k2", event(f"new-{i}", "k2"), i) for i in range(12)] + [(b"k1", event("new-12", "k1"), 12)]
    worker.take(pack(2, old + new[10:12]), offset=0)  # epoch 0: the old log, then the new log's 10..11
    worker.sink.stored_up_to = position(0, 11)
    worker.sink.stored_records = {position(0, offset): StoredRecord("row", json.loads(value)["event_id"])
                                  for _, value, offset in old + new[10:12]}
    worker.epochs.mark_replaced(2)
    worker.take(pack(2, new), offset=1)  # rewound: the new log from its start, epoch 1
    worker.take(pack(2, new[10:12]), offset=2)  # delivered again
    learned = worker.processor.pipeline.describe_state(worker.key_state.data[b"k2"])["events"]
    assert learned == 12 and worker.metrics.epochs.value == 1
    assert [row[0] for row in worker.sink.rows].count("new-10") == 1
