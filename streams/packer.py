"""``distillguard packer``: packs ``llm.requests`` into batch envelopes for the workers (issue #20).

Faust costs a worker 220-300 us of CPU per Kafka message before its agent sees it, more than
the detector's own step; confluent-kafka reads the same records at ~3 us each. This thin
stage reads ``llm.requests`` with confluent-kafka and writes each partition's records, in
offset order, as ``llm.request.batch.v1`` envelopes (streams/envelope.py) to the packed
topic, partition p to partition p: the packed topic has the source's partition count, so the
workers' state table stays co-partitioned. An envelope is sealed at DG_PACKER_MAX_EVENTS
records, DG_PACKER_MAX_BYTES or when its first record has waited DG_PACKER_MAX_WAIT_MS.

At least once: input offsets are committed only after the envelopes holding their records
are delivered (acks=all). A packer killed before its commit packs those records again; the
worker recognises them by their source offsets (key state, sink watermark) and event ids.
The packer never parses a record: bad input reaches the worker byte for byte and is
dead-lettered there, with its source offset.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import Field

from distillguard.errors import ConfigError, DistillguardError
from distillguard.devtools.faults import FaultInjection

from .envelope import key_bytes, pack
from .settings import KafkaSettings

log = logging.getLogger(__name__)

_ITEM_OVERHEAD = 24  # bytes an item adds beside its base64 and key: quotes, commas, its offset


class PackerError(DistillguardError):
    """Envelopes the broker did not take: their records are not committed (read again on restart)."""


class RequestsTopicMissing(DistillguardError):
    """The requests topic does not exist yet (the workers create it): the packer waits for it."""


class PackedTopicMismatch(ConfigError):
    """The packed topic exists with another partition count than the requests topic."""


class PackerSettings(KafkaSettings):
    """The packer (``DG_*``); Kafka from :class:`~distillguard.streams.settings.KafkaSettings`."""

    # The topic packed (the workers' DG_REQUESTS_TOPIC).
    requests_topic: str = "llm.requests"
    # Where envelopes go (the workers' DG_PACKED_TOPIC); created with the requests topic's partitions.
    packed_topic: str = "llm.requests.packed"
    # The packer's consumer group on requests_topic (its commits: what has been handed on).
    packer_group_id: str = "distillguard-packer"
    # A packer that dies holds its partitions this long before another takes them (the group's
    # session timeout; librdkafka's 45 s default would stall the stream as long).
    session_timeout_s: float = Field(10.0, ge=1, le=300)
    # /health (only that: no data) for the orchestrator's probe; 503 when no consume round has
    # finished for DG_PACKER_STALL_S (a packer stuck on the broker). Loopback unless configured.
    packer_web_bind: str = "127.0.0.1"
    packer_web_port: int = Field(6068, ge=0, le=65535)
    packer_stall_s: float = Field(60.0, gt=0)
    # An envelope is sealed at this many records (one Faust message each in the worker).
    packer_max_events: int = Field(500, ge=1, le=100_000)
    # ... or at this many bytes (encoded: records go as base64, x4/3; under Kafka's default 1 MiB
    # message limit). A record too big to share an envelope goes alone in one (below).
    packer_max_bytes: int = Field(900_000, ge=16_384, le=50_000_000)
    # A record over what an envelope of DG_PACKER_MAX_BYTES carries (~670 KB) goes whole, alone in
    # an envelope of ~4/3 its size, when it is at most this big and the broker takes a message that
    # size (the packed topic's max.message.bytes); else as its prefix, and the worker dead-letters
    # it ("too big to pack") with its size: it reached llm.requests, so it is never dropped silently.
    packer_max_record_bytes: int = Field(8_000_000, ge=16_384, le=500_000_000)
    # ... or when its first record has waited this long: the latency the stage adds at low traffic.
    # Shorter means smaller envelopes below full load, so more Faust messages per event. With the
    # first packed worker (~400 events/s, 2026-12-01) 50 and 100 ms made it fall behind (p99
    # 6.5 s and 4.8 s against 1.5 s with 200 ms); a worker ten times faster pays that cost
    # easily: at 2,900 events/s (~60 % of one worker) 100 ms gave p50 0.16 s and p99 0.36-0.43 s
    # against 0.24-0.25 and 0.52-0.53 s with 200 ms, CPU per event no higher (two interleaved
    # rounds on a quiet machine: benchmarks/results/latency-packer-wait.md).
    packer_max_wait_ms: int = Field(100, ge=1, le=60_000)
    # How long a fetch may wait at the broker for records (librdkafka's fetch.wait.max.ms, 500 by
    # default). The embedded tansu broker holds every fetch that long even with records waiting:
    # records then reached the packer in bursts every 500 ms, on top of DG_PACKER_MAX_WAIT_MS.
    packer_fetch_max_wait_ms: int = Field(50, ge=1, le=1500)


@dataclass(slots=True)
class _Open:
    """The envelope being filled for one partition."""

    records: list[tuple[bytes | None, bytes | None, int]] = field(default_factory=list)
    size: int = 0
    since: float = 0.0


class Packer:
    """One packer process: consume, pack per partition, produce, commit what was delivered."""

    def __init__(self, settings: PackerSettings, *, clock=time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjection()
        self.open: dict[int, _Open] = {}
        self.packed_records = 0
        self.last_round = clock()  # when the last consume round finished (/health)
        self.envelopes = 0
        conf = settings.confluent_config()
        self.consumer = Consumer({**conf, "group.id": settings.packer_group_id, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "enable.partition.eof": False,
                                  "session.timeout.ms": int(settings.session_timeout_s * 1000),
                                  "heartbeat.interval.ms": max(int(settings.session_timeout_s * 250), 100),
                                  "fetch.wait.max.ms": settings.packer_fetch_max_wait_ms})
        # Records sharing an envelope: what one item may carry, before base64's x4/3.
        self.max_item_bytes = (settings.packer_max_bytes - 4096) * 3 // 4
        alone_max = _ITEM_OVERHEAD + 4096 + settings.packer_max_record_bytes * 4 // 3
        self.producer = Producer({**conf, "acks": "all", "linger.ms": 5,
                                  "message.max.bytes": max(1_000_000, settings.packer_max_bytes, alone_max) + 65_536})

    def ensure_packed_topic(self, timeout: float = 15.0) -> int:
        """Create the packed topic with the requests topic's partition count; returns it."""
        settings = self.settings
        admin = AdminClient(settings.confluent_config())
        topics = admin.list_topics(timeout=timeout).topics
        source = topics.get(settings.requests_topic)
        if source is None or source.error is not None or not source.partitions:
            raise RequestsTopicMissing(f"requests topic {settings.requests_topic} not found (the workers create it)")
        partitions = len(source.partitions)
        packed = topics.get(settings.packed_topic)
        if packed is not None and packed.error is None and packed.partitions:
            if len(packed.partitions) != partitions:
                raise PackedTopicMismatch(f"{settings.packed_topic} has {len(packed.partitions)} partitions, "
                                          f"{settings.requests_topic} {partitions}: they must be equal")
            return partitions
        new = NewTopic(settings.packed_topic, num_partitions=partitions, replication_factor=settings.replication_factor)
        for future in admin.create_topics([new], operation_timeout=timeout).values():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        return partitions

    def run(self, stop: threading.Event) -> None:
        """Pack until ``stop`` is set; the open envelopes are then sealed and committed."""
        while not stop.is_set():
            try:
                self.ensure_packed_topic()
                break
            except RequestsTopicMissing as exc:
                log.warning("%s: waiting", exc)
                self.last_round = self.clock()  # (waiting, not stuck: /health stays up)
                stop.wait(5.0)
        self.consumer.subscribe([self.settings.requests_topic], on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                self.step()
            self.seal(list(self.open))
        finally:
            self.consumer.close()

    def step(self) -> None:
        """One round: take what the broker has, seal the envelopes that are full or old enough.

        A round blocks only until the oldest open envelope is due, and a record counts as
        waiting from the start of the round it came in (when it arrived in the round is not
        known): with rounds of the full wait and the clock started at its end, a record waited
        up to twice DG_PACKER_MAX_WAIT_MS below full load."""
        settings = self.settings
        round_start = self.clock()
        for message in self.consumer.consume(num_messages=settings.packer_max_events,
                                             timeout=self._round_timeout(round_start)):
            if message.error() is not None:
                log.warning("consumer: %s", message.error())
                continue
            self._add(message, round_start)
        now = self.last_round = self.clock()
        wait = settings.packer_max_wait_ms / 1000
        due = [p for p, env in self.open.items()
               if len(env.records) >= settings.packer_max_events or env.size >= settings.packer_max_bytes
               or now >= env.since + wait]
        if due:
            self.seal(due)

    def _round_timeout(self, now: float) -> float:
        """Seconds a consume round may block: until the oldest open envelope is due."""
        wait = self.settings.packer_max_wait_ms / 1000
        if not self.open:
            return wait
        return min(wait, max(0.0, min(env.since + wait for env in self.open.values()) - now))

    def _add(self, message, arrived_by: float) -> None:
        partition, value = message.partition(), message.value()
        if value is not None and len(value) > self.max_item_bytes:
            if partition in self.open:
                self.seal([partition])  # (offset order: what came before it goes first)
            self.pack_alone(partition, message.key(), value, message.offset())
            return
        size = (len(value) * 4 // 3 if value is not None else 4) + _ITEM_OVERHEAD + key_bytes(message.key())
        envelope = self.open.get(partition)
        if envelope is not None and envelope.size + size > self.settings.packer_max_bytes:
            self.seal([partition])  # full by bytes: this record opens the next one
            envelope = None
        if envelope is None:
            envelope = self.open[partition] = _Open(since=arrived_by)
        envelope.records.append((message.key(), value, message.offset()))
        envelope.size += size

    def seal(self, partitions: list[int]) -> None:
        """Produce the envelopes of ``partitions``, wait for their delivery, then commit their offsets."""
        failed: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failed.append(str(err))

        commits = []
        for partition in partitions:
            envelope = self.open.pop(partition, None)
            if envelope is None or not envelope.records:
                continue
            value = pack(partition, envelope.records, self.max_item_bytes)
            self.producer.produce(self.settings.packed_topic, value=value, key=str(partition).encode(),
                                  partition=partition, on_delivery=delivered)
            commits.append(TopicPartition(self.settings.requests_topic, partition, envelope.records[-1][2] + 1))
            self.packed_records += len(envelope.records)
            self.envelopes += 1
        if not commits:
            return
        if self.producer.flush(30) or failed:
            # Nothing of this round is committed: a restart packs it again (the worker de-duplicates).
            raise PackerError(f"{len(commits)} envelopes not delivered: {failed[:1] or 'flush timed out'}")
        self._injected_crash()
        self._commit(commits)

    def pack_alone(self, partition: int, key: bytes | None, value: bytes, offset: int) -> None:
        """A record too big to share an envelope, alone in one: whole if the broker takes it,
        else its prefix (the worker dead-letters it with its size); then its offset committed."""
        whole = len(value) <= self.settings.packer_max_record_bytes
        if not (whole and self._deliver(partition, pack(partition, [(key, value, offset)]))):
            log.warning("partition %s offset %s: a record of %d bytes goes as its prefix (too big for the packed "
                        "topic): the worker dead-letters it", partition, offset, len(value))
            if not self._deliver(partition, pack(partition, [(key, value, offset)], self.max_item_bytes)):
                raise PackerError(f"partition {partition} offset {offset}: not delivered, even cut to its prefix")
        self.packed_records += 1
        self.envelopes += 1
        self._commit([TopicPartition(self.settings.requests_topic, partition, offset + 1)])

    def _deliver(self, partition: int, value: bytes) -> bool:
        """Produce one envelope and wait for it: False when it is too big for the producer or the
        broker; any other failure raises :class:`PackerError` (nothing committed)."""
        errors: list = []
        try:
            self.producer.produce(self.settings.packed_topic, value=value, key=str(partition).encode(),
                                  partition=partition, on_delivery=lambda err, _msg: errors.append(err))
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                return False
            raise PackerError(f"envelope of partition {partition} not produced: {exc}") from exc
        if self.producer.flush(30) or not errors:
            raise PackerError(f"envelope of partition {partition} not delivered: flush timed out")
        if errors[0] is None:
            return True
        if errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
            return False
        raise PackerError(f"envelope of partition {partition} not delivered: {errors[0]}")

    def _commit(self, offsets: list[TopicPartition]) -> None:
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # a rebalance took the partitions: their new owner packs them again
            log.warning("commit of %d partitions failed (packed again by their next owner): %s", len(offsets), exc)

    def _injected_crash(self) -> None:
        """The fault test's kill between delivery and commit (core/faults.py)."""
        fault = self.faults.packer_crash_file
        if fault is not None and fault.exists():
            fault.unlink()
            log.warning("packer: injected crash after delivery, before the commit")
            os._exit(70)

    def _on_revoke(self, _consumer, partitions) -> None:
        # Seal what is open for them first: their records are delivered and committed by us,
        # not packed again by their next owner.
        self.seal([tp.partition for tp in partitions if tp.partition in self.open])


def serve_health(packer: Packer) -> ThreadingHTTPServer:
    """/health on DG_PACKER_WEB_BIND:DG_PACKER_WEB_PORT, in a daemon thread."""
    settings = packer.settings

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != "/health":
                self.send_error(404)
                return
            idle = packer.clock() - packer.last_round
            ok = idle < settings.packer_stall_s
            body = json.dumps({"ok": ok, "records": packer.packed_records, "envelopes": packer.envelopes,
                               "seconds_since_last_round": round(idle, 1)}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # probes every few seconds: not worth a log line each
            pass

    server = ThreadingHTTPServer((settings.packer_web_bind, settings.packer_web_port), Health)
    threading.Thread(target=server.serve_forever, name="packer-health", daemon=True).start()
    return server


def run_packer(settings: PackerSettings | None = None) -> int:
    """The ``distillguard packer`` entry point: pack until SIGTERM or SIGINT."""
    settings = settings or PackerSettings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    packer = Packer(settings)
    serve_health(packer)
    log.warning("packer: %s -> %s (%d events / %d bytes / %d ms an envelope)", settings.requests_topic,
                settings.packed_topic, settings.packer_max_events, settings.packer_max_bytes,
                settings.packer_max_wait_ms)
    packer.run(stop)
    log.warning("packer stopped: %d records in %d envelopes", packer.packed_records, packer.envelopes)
    return 0
