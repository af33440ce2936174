"""The packer's envelopes stay under DG_PACKER_MAX_BYTES whatever the records and keys (an envelope over
the broker's message limit would never be delivered, and the partition would stop), and each holds
one partition's records in offset order. (Delivery, commits and kills: tests/integration/test_packer.py.)"""
from __future__ import annotations

import random

from distillguard.streams.envelope import unpack
from distillguard.streams.packer import Packer, PackerSettings


class _Message:
    def __init__(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self._p, self._o, self._k, self._v = partition, offset, key, value

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return self._k

    def value(self):
        return self._v

    def error(self):
        return None


def _packer(max_bytes: int) -> tuple[Packer, list[tuple[int, bytes]]]:
    """A packer without Kafka clients; sealed envelopes are kept instead of produced."""
    from distillguard.streams.envelope import pack

    packer = Packer.__new__(Packer)
    packer.settings = PackerSettings(packer_max_bytes=max_bytes, packer_max_events=10_000)
    packer.clock, packer.open = (lambda: 0.0), {}
    packer.max_item_bytes = (max_bytes - 4096) * 3 // 4
    sealed = []

    def seal(partitions):
        for partition in partitions:
            sealed.append((partition, pack(partition, packer.open.pop(partition).records, packer.max_item_bytes)))

    def pack_alone(partition, key, value, offset):  # (the alone envelope's delivery: tests below)
        sealed.append((partition, pack(partition, [(key, value, offset)])))

    packer.seal, packer.pack_alone = seal, pack_alone
    return packer, sealed


def test_envelopes_stay_under_the_byte_limit_with_escaped_keys_and_big_records():
    rng = random.Random(3)
    packer, sealed = _packer(max_bytes=20_000)
    offsets = [0, 0]
    for _ in range(3000):
        partition = rng.randrange(2)
        key = bytes(rng.randrange(0, 32) for _ in range(rng.randrange(0, 128)))  # control bytes: \u00XX each
        value = None if rng.random() < 0.01 else rng.randbytes(rng.choice([10, 300, 5000, 40_000]))
        packer._add(_Message(partition, offsets[partition], key, value), 0.0)
        offsets[partition] += 1
    packer.seal(list(packer.open))
    shared = [value for p, value in sealed if len(unpack(value, partition=p).records) > 1]  # (not alone)
    assert shared and max(len(value) for value in shared) <= 20_000
    for partition in (0, 1):
        records = [r for p, value in sealed if p == partition for r in unpack(value, partition=p).records]
        assert [r.offset for r in records] == list(range(offsets[partition]))


class _TrickleConsumer:
    """A broker with one record arriving every ``every`` s of a fake clock; ``consume`` blocks
    as librdkafka's does: until ``num_messages`` records or the timeout."""

    def __init__(self, clock: list[float], every: float) -> None:
        self.clock, self.every, self.next_at, self.offset = clock, every, every / 2, 0

    def consume(self, num_messages: int, timeout: float):
        end, got = self.clock[0] + timeout, []
        while self.next_at <= end and len(got) < num_messages:
            self.clock[0] = max(self.clock[0], self.next_at)
            got.append(_Message(0, self.offset, b"k", b"{}"))
            self.offset, self.next_at = self.offset + 1, self.next_at + self.every
        if len(got) < num_messages:
            self.clock[0] = end
        return got


def test_no_record_waits_in_the_packer_longer_than_the_max_wait():
    """Below full load an envelope is sealed by time: a record is handed on at most
    DG_PACKER_MAX_WAIT_MS after it arrived (rounds of the full wait once let it wait twice that)."""
    clock = [0.0]
    packer, sealed = _packer(max_bytes=900_000)
    packer.settings = PackerSettings(packer_max_wait_ms=200, packer_max_events=500)
    packer.clock = lambda: clock[0]
    packer.consumer = _TrickleConsumer(clock, every=0.013)
    arrived, handed_on = {}, {}
    seal = packer.seal

    def timed_seal(partitions):
        for partition in partitions:
            for _, _, offset in packer.open[partition].records:
                handed_on[offset] = clock[0]
        seal(partitions)

    packer.seal = timed_seal
    while clock[0] < 5.0:
        packer.step()
    for offset in handed_on:
        arrived[offset] = 0.0065 + 0.013 * offset
    waits = [handed_on[o] - arrived[o] for o in handed_on]
    assert len(waits) > 300 and max(waits) <= 0.2 + 1e-9


class _Broker:
    """A producer and consumer's commits against a broker taking messages up to ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.topic, self.commits, self._pending = limit, [], [], []

    def produce(self, topic, value, key, partition, on_delivery) -> None:
        self._pending.append((partition, value, on_delivery))

    def flush(self, timeout) -> int:
        from confluent_kafka import KafkaError

        for partition, value, on_delivery in self._pending:
            if len(value) > self.limit:
                on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
            else:
                self.topic.append((partition, value))
                on_delivery(None, None)
        self._pending.clear()
        return 0

    def commit(self, offsets, asynchronous) -> None:
        self.commits += [(tp.partition, tp.offset) for tp in offsets]


def _packer_on(broker: _Broker) -> Packer:
    packer = Packer.__new__(Packer)
    packer.settings = PackerSettings()
    packer.clock, packer.open, packer.packed_records, packer.envelopes = (lambda: 0.0), {}, 0, 0
    packer.max_item_bytes = (packer.settings.packer_max_bytes - 4096) * 3 // 4
    packer.producer = packer.consumer = broker
    from distillguard.devtools.faults import FaultInjection
    packer.faults = FaultInjection()
    return packer


def test_a_record_too_big_to_share_an_envelope_goes_whole_alone_when_the_broker_takes_it():
    big = b'{"prompt":"' + b"x" * 800_000 + b'"}'  # over the ~670 KB an envelope item carries
    broker = _Broker(limit=2_000_000)
    packer = _packer_on(broker)
    packer._add(_Message(4, 10, b"k", b"{}"), 0.0)
    packer._add(_Message(4, 11, b"k", big), 0.0)
    packer._add(_Message(4, 12, b"k", b"{}"), 0.0)
    packer.seal(list(packer.open))
    envelopes = [unpack(value, partition=p) for p, value in broker.topic]
    assert [[r.offset for r in e.records] for e in envelopes] == [[10], [11], [12]]  # in offset order
    assert envelopes[1].records[0].value == big and envelopes[1].truncated == {}
    assert broker.commits == [(4, 11), (4, 12), (4, 13)]


def test_a_record_the_broker_refuses_whole_goes_as_its_prefix_to_be_dead_lettered():
    big = b"y" * 800_000
    broker = _Broker(limit=1_000_000)  # Kafka's default: 4/3 of 800 KB does not fit
    packer = _packer_on(broker)
    packer._add(_Message(2, 5, None, big), 0.0)
    ((partition, value),) = broker.topic
    envelope = unpack(value, partition=partition)
    assert envelope.truncated == {0: len(big)} and big.startswith(envelope.records[0].value)
    assert broker.commits == [(2, 6)]
