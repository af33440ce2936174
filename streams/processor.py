"""The worker's per-record step, kept apart from Faust so it can be tested and reasoned about.

decode -> (bad: dead-letter record) | (good: ``KeyPipeline.step`` on the key's state).
Errors are data: nothing here raises on a record; the Faust agent only moves bytes.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from distillguard.models.events import BadRecord, RequestEvent, parse_event
from distillguard.models.pipeline import StepResult, decode_state, encode_state
from .epochs import offset_of


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


class RequestProcessor:
    """Turns one input record into state, a feature row, an optional alert or a dead letter."""

    def __init__(self, pipeline, *, source_topic: str, max_future_ms: int | None = None,
                 allowed_lateness_ms: int | None = None, dlq_max_bytes: int | None = None,
                 clock=time.time) -> None:
        self.dlq_max_bytes = dlq_max_bytes
        self.pipeline = pipeline
        self.source_topic = source_topic
        self.max_future_ms = max_future_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.clock = clock
        self.counters = Counters()

    def decode(self, value: bytes | None, key: bytes | None, partition: int,
               offset: int) -> RequestEvent | DeadLetter:
        self.counters.events += 1
        parsed = parse_event(value) if value is not None else BadRecord("empty record (no value)", b"")
        if isinstance(parsed, RequestEvent) and self.max_future_ms is not None:
            ahead = parsed.ts_ms - int(self.clock() * 1000)
            if ahead > self.max_future_ms:
                parsed = BadRecord(f"ts: {ahead // 1000}s in the future (limit {self.max_future_ms // 1000}s)",
                                   value or b"")
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
        result = self.pipeline.step(state, event, offset)
        if result.duplicate:
            self.counters.duplicates += 1
            return StepResult(state, None, None, duplicate=True)
        current = decode_state(state)
        row = dict(result.row, score=float(current.score), alerting=int(current.alerting))
        self.counters.late += 1
        self.counters.processed += 1
        return StepResult(state, row, None)

    def step(self, state: bytes | None, event: RequestEvent, offset: int) -> StepResult:
        result = self.pipeline.step(state, event, offset)
        if result.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.processed += 1
        if result.alert is not None:
            self.counters.alerts += 1
        return result
