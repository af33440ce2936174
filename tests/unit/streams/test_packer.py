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

    packer.seal = seal
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
    assert max(len(value) for _, value in sealed) <= 20_000
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
