"""One event step: raw input records -> dead letters, feature rows, alerts, link records and
per-key state. Pure (no I/O), shared by the workers, ``distillguard replay``, the dashboard's
seeding and the benchmarks, so that all of them process an event the same way.

decode -> (bad: dead-letter record) | (good: ``KeyPipeline`` on the key's state, the link
record for the cross-key detector). Errors are data: nothing here raises on a record.

:meth:`RequestProcessor.run` takes a batch: each key's state is decoded once, stays decoded
while the batch's events of that key are stepped, and is packed once at the end.

>>> from distillguard.models.pipeline import KeyPipeline
>>> step = RequestProcessor(KeyPipeline(), source_topic="llm.requests")
>>> good = (b'{"schema":"llm.request.v1","event_id":"e1","ts":"2026-02-01T00:00:00Z","api_key_id":"k1",'
...         b'"account_id":"a1","model":"m","prompt":"hi"}')
>>> out = step.run([Record(good, b"k1", 0, 7), Record(b"{oops", b"k1", 0, 8)], {})
>>> [row["api_key_id"] for row, _, _ in out.rows], [d.reason[:8] for d in out.dead_letters], sorted(out.states)
(['k1'], ['not JSON'], ['k1'])
"""
from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .clusters import ClusterDetector, LinkRecord, link_record
from .events import BadRecord, RequestEvent, parse_event
from .pipeline import KeyState, StepResult, decode_state, encode_state
from .positions import offset_of


@dataclass(slots=True)
class DeadLetter:
    """A record for ``llm.requests.dlq``: the original bytes, the reason in headers."""

    reason: str
    value: bytes
    key: bytes | None
    source_topic: str
    partition: int
    offset: int
    size: int = -1  # the original record's size in bytes (``value`` may be a truncated prefix)

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.value)

    def truncated(self, max_bytes: int | None) -> "DeadLetter":
        """Keep the first ``max_bytes`` of the value: a record bigger than the dead-letter
        topic accepts must still be dead-lettered (its reason, position and a prefix)."""
        if max_bytes is not None and len(self.value) > max_bytes:
            self.value = self.value[:max_bytes]
        return self

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("dg.reason", self.reason.encode("utf-8", "replace")),
            ("dg.source.topic", self.source_topic.encode()),
            ("dg.source.partition", str(self.partition).encode()),
            ("dg.source.offset", str(self.offset).encode()),
            ("dg.failed.at", str(int(time.time() * 1000)).encode()),
        ]
        if self.size > len(self.value):
            headers += [("dg.truncated", b"1"), ("dg.original.size", str(self.size).encode())]
        return headers


@dataclass(slots=True)
class Counters:
    events: int = 0
    processed: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    alerts: int = 0
    key_mismatch: int = 0
    late: int = 0
    clamped: int = 0  # events with a field changed to fit its column (RequestEvent.clamped)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    clamped_fields: dict[str, int] = field(default_factory=dict)


def _last_ts_reader():
    """A fast reader of a state's last event time (one float, not the whole state), checked
    against the detector's own encoding at import; the full decode if the layout differs."""
    probe = decode_state(None)
    probe.last_ts = 1234567.0
    encoded = encode_state(probe)
    for at in range(1, len(encoded) - 7, 8):
        if struct.unpack_from("<d", encoded, at)[0] == 1234567.0:
            size, version = len(encoded), encoded[0]

            def last_ts(state: bytes) -> float:
                if len(state) != size or state[0] != version:
                    return decode_state(state).last_ts
                return struct.unpack_from("<d", state, at)[0]
            return last_ts
    return lambda state: decode_state(state).last_ts


_last_ts = _last_ts_reader()


def _reason_class(reason: str) -> str:
    """A low-cardinality label for metrics: the reason up to its first colon."""
    return reason.split(":", 1)[0][:40]


@dataclass(slots=True)
class Record:
    """One input record. ``position``: where it sits in its partition for the key state's
    duplicate test (``models.positions``: the epoch above the offset); None when unknown (a
    file replayed), then only the key's event-id ring recognises duplicates. ``applied``: its
    event is in its key's state already, applied at another position (a new log's record
    that a worker read at its old fetch position before it found the log replaced:
    streams/epochs.py); it only moves the key's position up to its own."""

    value: bytes | None
    key: bytes | None = None
    partition: int = -1
    offset: int = -1
    position: int | None = None
    applied: bool = False


@dataclass(slots=True)
class BatchResult:
    """What a batch of records produced, in input order."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    rows: list[tuple[dict, int, int]] = field(default_factory=list)  # (row, partition, position, else offset)
    alerts: list[dict] = field(default_factory=list)  # each event's key alert, then its cluster alerts
    links: list[LinkRecord] = field(default_factory=list)
    states: dict[str, bytes] = field(default_factory=dict)  # the packed state of every key the batch stepped


class RequestProcessor:
    """Turns input records into state, feature rows, alerts, link records or dead letters.

    ``clusters``: the cross-key detector to hand each link record to, in-process (replay);
    the workers send link records to their cluster agent instead."""

    def __init__(self, pipeline, *, source_topic: str, max_future_ms: int | None = None,
                 allowed_lateness_ms: int | None = None, dlq_max_bytes: int | None = None,
                 clock=time.time, clusters: ClusterDetector | None = None) -> None:
        self.clusters = clusters
        self.cluster_seconds = 0.0  # CPU the cross-key detector took (what its one-partition agent must keep up with)
        self.dlq_max_bytes = dlq_max_bytes
        self.pipeline = pipeline
        self.source_topic = source_topic
        self.max_future_ms = max_future_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.clock = clock
        self.counters = Counters()

    def parse(self, value: bytes | None) -> RequestEvent | BadRecord:
        """The record as an event, or why it is bad (a timestamp too far in the future
        included); counts nothing (:meth:`decode` does)."""
        parsed = parse_event(value) if value is not None else BadRecord("empty record (no value)", b"")
        if isinstance(parsed, RequestEvent) and self.max_future_ms is not None:
            ahead = parsed.ts_ms - int(self.clock() * 1000)
            if ahead > self.max_future_ms:
                parsed = BadRecord(f"ts: {ahead // 1000}s in the future (limit {self.max_future_ms // 1000}s)",
                                   value or b"")
        return parsed

    def decode(self, value: bytes | None, key: bytes | None, partition: int,
               offset: int) -> RequestEvent | DeadLetter:
        self.counters.events += 1
        parsed = self.parse(value)
        if isinstance(parsed, BadRecord):
            self.counters.dead_letters += 1
            cls = _reason_class(parsed.reason)
            self.counters.dead_letter_reasons[cls] = self.counters.dead_letter_reasons.get(cls, 0) + 1
            return DeadLetter(parsed.reason, value or b"", key, self.source_topic, partition,
                              offset).truncated(self.dlq_max_bytes)
        if key is not None and key != parsed.api_key_id.encode("utf-8", "surrogatepass"):
            # The contract keys messages by api_key_id; a producer that does not breaks
            # co-partitioning of the state table. Counted, still processed by api_key_id.
            self.counters.key_mismatch += 1
        if parsed.clamped:
            self.counters.clamped += 1
            for name in parsed.clamped:
                self.counters.clamped_fields[name] = self.counters.clamped_fields.get(name, 0) + 1
        return parsed

    def failed(self, message, exc: Exception) -> DeadLetter:
        """A record that crashed processing (a bug, not bad input): dead-lettered, never dropped."""
        self.counters.dead_letters += 1
        self.counters.dead_letter_reasons["processing failed"] = \
            self.counters.dead_letter_reasons.get("processing failed", 0) + 1
        return DeadLetter(f"processing failed: {type(exc).__name__}: {exc}"[:500], message.value or b"",
                          message.key, self.source_topic, message.partition,
                          message.offset).truncated(self.dlq_max_bytes)

    def rejected_by_sink(self, rejected, messages) -> list[DeadLetter]:
        """Dead letters for the event rows ClickHouse refused (``ClickHouseSink.take_rejected``),
        carrying their source records from ``messages`` (the flushed events' messages). The
        sink stored them in its dlq table already; alert, feedback and dlq rows have no
        source record on the input topic and are only counted by the caller."""
        by_position = {(m.partition, m.offset): m for m in messages}
        letters = []
        for row in rejected:
            if row.table != "events":
                continue
            offset = offset_of(row.offset)  # the sink keeps positions (epoch, offset): see epochs.py
            message = by_position.get((row.partition, offset))
            self.counters.dead_letters += 1
            self.counters.dead_letter_reasons["sink_rejected"] = \
                self.counters.dead_letter_reasons.get("sink_rejected", 0) + 1
            letters.append(DeadLetter(row.reason, (message.value or b"") if message else b"",
                                      message.key if message else None, row.topic, row.partition,
                                      offset).truncated(self.dlq_max_bytes))
        return letters

    def run(self, records: Iterable[Record], states: Mapping[str, bytes]) -> BatchResult:
        """Step a batch of records on the key states in ``states`` (read, never written: the
        new states are in the result, for the caller to store)."""
        out = BatchResult()
        for _ in self.steps(records, states, out):
            pass
        return out

    def steps(self, records: Iterable[Record], states: Mapping[str, bytes], out: BatchResult) -> Iterator[Record]:
        """:meth:`run` a record at a time: yields each record once what it produced is in
        ``out``, so that a caller can tell which record made which output (``distillguard
        replay --jobs`` puts the outputs of several processes back in input order); sets
        ``out.states`` when it ends."""
        decoded: dict[str, KeyState] = {}
        for record in records:
            event = self.decode(record.value, record.key, record.partition, record.offset)
            if isinstance(event, DeadLetter):
                out.dead_letters.append(event)
                yield record
                continue
            if record.applied:
                self._reposition(decoded, states, event, record)
                yield record
                continue
            st = decoded.get(event.api_key_id)
            if st is None:
                st = decoded[event.api_key_id] = decode_state(states.get(event.api_key_id))
            self._step_one(st, event, record, out)
            yield record
        out.states = {key: encode_state(st) for key, st in decoded.items()}

    def _reposition(self, decoded: dict[str, KeyState], states: Mapping[str, bytes], event: RequestEvent,
                    record: Record) -> None:
        """A record whose event its key's state holds already (``Record.applied``): counted as a
        duplicate, and the key's position moved up to the record's. Skipping it alone was not
        enough: its key's position stayed where the old epoch put it, below every position of
        the new one, and the same record delivered again later in the epoch (Faust hands a
        rewound partition on again, a rejoin reads it from the start) was applied a second
        time (tests/integration/test_partition_epochs.py: a key learned 14 events of 12)."""
        self.counters.duplicates += 1
        st = decoded.get(event.api_key_id)
        if st is None:
            state = states.get(event.api_key_id)
            if state is None:
                return  # no state to protect (evicted): nothing to move
            st = decoded[event.api_key_id] = decode_state(state)
        if record.position is not None and record.position > st.last_offset:
            st.last_offset = record.position

    def _step_one(self, st: KeyState, event: RequestEvent, record: Record, out: BatchResult) -> None:
        position = record.position
        source = -1 if position is None else position  # (the cluster detector's dedup needs a position)
        stored_at = record.offset if position is None else position
        if self.allowed_lateness_ms is not None and event.ts_ms < st.last_ts - self.allowed_lateness_ms:
            result = self._late(st, encode_state(st), event, position)
            if result.row is not None:
                out.rows.append((result.row, record.partition, stored_at))
            return
        result = self.pipeline.step_decoded(st, event, position)
        self._count(result)
        if result.duplicate:
            return
        out.rows.append((result.row, record.partition, stored_at))
        if result.alert is not None:
            out.alerts.append(result.alert)
        link = link_record(event, result, partition=record.partition, offset=source)
        if link is not None:
            out.links.append(link)
            if self.clusters is not None:
                began = time.perf_counter()
                out.alerts.extend(self.clusters.observe_link(link))
                self.cluster_seconds += time.perf_counter() - began

    def is_late(self, state: bytes | None, event: RequestEvent) -> bool:
        """Event time more than the allowed lateness before the key's last applied event time.

        Late events are stored (ClickHouse rollups aggregate by event time whenever a row
        arrives) but not learned: feeding a key's detector an event from its past would
        read as a burst (a negative gap) and rewind its clock. See :meth:`step_late`.
        """
        if self.allowed_lateness_ms is None or state is None:
            return False
        return event.ts_ms < _last_ts(state) - self.allowed_lateness_ms

    def step_late(self, state: bytes, event: RequestEvent, offset: int) -> StepResult:
        """A late event: its feature row, scored with the key's current score; state unchanged.

        The detector steps a copy only to build the row and recognise a duplicate event id;
        the new state, any alert and the features (no link record for the cluster detector)
        are dropped. The key's input offset is not advanced, so after a crash the event is
        re-read and classified the same way; the sink's watermark drops its row if stored.
        """
        return self._late(decode_state(state), state, event, offset)

    def _late(self, current: KeyState, state: bytes, event: RequestEvent, offset: int | None) -> StepResult:
        result = self.pipeline.step(state, event, offset)
        if result.duplicate:
            self.counters.duplicates += 1
            return StepResult(state, None, None, duplicate=True)
        row = dict(result.row, score=float(current.score), alerting=int(current.alerting))
        self.counters.late += 1
        self.counters.processed += 1
        return StepResult(state, row, None)

    def step(self, state: bytes | None, event: RequestEvent, offset: int) -> StepResult:
        result = self.pipeline.step(state, event, offset)
        self._count(result)
        return result

    def _count(self, result: StepResult) -> None:
        if result.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.processed += 1
        if result.alert is not None:
            self.counters.alerts += 1
