"""``distillguard replay``: the workers' detector over an events file, or over a window of a
Kafka topic (a backfill), without a worker.

Event-time order is the file's order (benchmark streams are written in ``ts`` order);
deterministic; bad lines are skipped, counted, and written with their reason to ``--dlq``.
From Kafka, the partitions are merged by record timestamp, each read from the offset of
``--since`` to the offset of ``--until`` (``offsets_for_times``), with no consumer group and no
commits. With a sink (``--clickhouse``) rows, alerts and dead letters are stored as the workers
store them. Exculpated detections (``contracts.alert.is_exculpated``) are routed as the workers
route them: not among the alerts, but counted, written to ``--exculpated`` and stored in the
sink's ``exculpated`` table; ``--send-exculpated`` writes them among the alerts too.
"""
from __future__ import annotations

import base64
import gzip
import heapq
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from distillguard.contracts.alert import alert_bytes, split_exculpated
from distillguard.errors import DistillguardError
from distillguard.models.clusters import ClusterDetector
from distillguard.models.pipeline import DetectorConfig, KeyPipeline
from distillguard.models.step import BatchResult, Record, RequestProcessor
from distillguard.replay_shards import ShardedStep

BATCH_RECORDS = 1000  # records stepped at a time (a key's state stays decoded within a batch)
PROGRESS_EVERY_S = 0.5  # how often the progress bar is redrawn
KAFKA_IDLE_TIMEOUT_S = 30.0  # a partition that yields nothing this long before its end offset: an error


class BackfillError(DistillguardError):
    """A backfill that cannot run: a bad time window, or a topic that cannot be read."""


@dataclass
class ReplaySummary:
    events: int = 0
    bad_records: int = 0
    duplicates: int = 0
    late: int = 0  # beyond the allowed lateness: not learned (as in the workers)
    alerts: int = 0
    exculpated: int = 0  # exculpated detections: recorded, not among the alerts (unless sent too)
    keys: int = 0
    seconds: float = 0.0
    state_bytes_per_key: float = 0.0
    # the cross-key detector's share: what the workers' one-partition cluster agent must keep up with
    link_records: int = 0
    cluster_seconds: float = 0.0

    def describe(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        return (f"replay: {self.events} events, {self.bad_records} bad records, {self.duplicates} duplicates, "
                f"{self.alerts} alerts, {self.exculpated} exculpated detections, {self.keys} keys, {self.seconds:.1f}s ({rate:,.0f} events/s), "
                f"{self.state_bytes_per_key:.0f} bytes of state per key")


# -- time window -------------------------------------------------------------------------
def parse_instant_ms(text: str) -> int:
    """An ISO 8601 instant -> epoch milliseconds. A time without a zone is UTC (the events' ``ts``
    are UTC), so that a window means the same on every operator's machine.

    >>> parse_instant_ms("2026-02-01T00:00:00Z"), parse_instant_ms("2026-02-01T01:00:00+01:00")
    (1769904000000, 1769904000000)
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BackfillError(f"not an ISO 8601 time: {text!r} (e.g. 2026-02-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def time_window_ms(since: str, until: str) -> tuple[int, int]:
    """``[since, until)`` in epoch milliseconds; an empty or reversed window is an error."""
    start, end = parse_instant_ms(since), parse_instant_ms(until)
    if end <= start:
        raise BackfillError(f"--until ({until}) must be after --since ({since})")
    return start, end


# -- progress ----------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(done: int, total: int, events: int, elapsed_s: float, width: int = 30) -> str:
    """One progress bar line: share of the input done (bytes of a file, records of a topic
    window), events/s, and the ETA at the rate so far (``--:--:--`` before any rate is known).

    >>> progress_line(250, 1000, 500, 10.0, width=8)
    '[##......]  25.0%  500 events  50 events/s  ETA 0:00:30'
    """
    share = min(done / total, 1.0) if total > 0 else 1.0
    filled = int(share * width)
    rate = events / elapsed_s if elapsed_s > 0 else 0.0
    eta = _clock((total - done) * elapsed_s / done) if 0 < done <= total and elapsed_s > 0 else "--:--:--"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {share * 100:5.1f}%  {events:,} events  "
            f"{rate:,.0f} events/s  ETA {eta}")


class ProgressBar:
    """Redrawn in place on a terminal (``\\r``), at most every ``every_s``; silent otherwise."""

    def __init__(self, total: int, stream=None, every_s: float = PROGRESS_EVERY_S, clock=time.monotonic) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.clock = clock
        self.started = self.drawn = clock()

    def update(self, done: int, events: int, force: bool = False) -> None:
        now = self.clock()
        if force or now - self.drawn >= self.every_s:
            self.drawn = now
            self.stream.write("\r" + progress_line(done, self.total, events, now - self.started))
            self.stream.flush()

    def close(self, done: int, events: int) -> None:
        self.total = done  # the input is finished: 100 %, whatever the estimate of its size was
        self.update(done, events, force=True)
        self.stream.write("\n")
        self.stream.flush()


def _progress_bar(enabled: bool, total: int) -> ProgressBar | None:
    """A bar only for a person watching: not with -q, not into a log file or a pipe."""
    return ProgressBar(total) if enabled and sys.stderr.isatty() else None


# -- sources -----------------------------------------------------------------------------
class FileLines:
    """A file's non-empty lines as records (a line's offset is its line number); ``done`` is how
    far into the file (bytes on disk, compressed for ``.gz``) reading has got, for the bar."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.topic = str(path)
        self.total = os.path.getsize(self.path)
        self._raw = None

    @property
    def done(self) -> int:
        return self._raw.tell() if self._raw is not None and not self._raw.closed else self.total

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as raw:
            self._raw = raw
            with (gzip.open(raw, "rb") if str(self.path).endswith(".gz") else raw) as src:
                for line_no, line in enumerate(src, 1):
                    line = line.rstrip(b"\r\n")
                    if line:
                        yield Record(line, offset=line_no)


class KafkaWindow:
    """The records of ``topic`` in ``[since_ms, until_ms)``, merged across partitions by timestamp.

    Per partition, Kafka's own definition of a time's offset (``offsets_for_times``: the first
    record whose timestamp is at or after it): from the offset of ``since`` up to the offset of
    ``until``, or the partition's end (EOF) if no record is that late yet. The broker's answer
    for ``since`` is where reading starts; the same rule is then applied to the records read,
    because brokers differ (tansu answers offset 0 for every time: its partitions are read from
    the start and cost more, with the same result; noida answers "none" and a wrong earliest
    offset: nothing is read from it, see docs/operations.md)."""

    def __init__(self, kafka_config: dict, topic: str, since_ms: int, until_ms: int,
                 timeout_s: float = KAFKA_IDLE_TIMEOUT_S) -> None:
        self.config = {**kafka_config, "group.id": "distillguard-replay", "enable.auto.commit": False,
                       "enable.auto.offset.store": False, "enable.partition.eof": True,
                       # an offset the broker says is out of range (retention deleted it while
                       # the backfill ran) is an error, never a silent jump to the end
                       "auto.offset.reset": "error"}
        self.topic = topic
        self.since_ms, self.until_ms = since_ms, until_ms
        self.timeout_s = timeout_s
        self.starts, self.total = self._start_offsets()
        self.read = 0  # records read, in the window or not (the progress bar's count)

    @property
    def done(self) -> int:
        return self.read

    def _start_offsets(self) -> tuple[dict[int, int], int]:
        """Each partition's first offset to read, and an estimate of the records to read."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        consumer = Consumer(self.config)
        try:
            meta = consumer.list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise BackfillError(f"topic {self.topic!r} not found ({meta.error if meta else 'no metadata'})")
            starts, total = {}, 0
            at_since, at_until = (self._offsets_at(consumer, sorted(meta.partitions), at)
                                  for at in (self.since_ms, self.until_ms))
            for partition, since_offset in at_since.items():
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                           timeout=self.timeout_s)
                first = starts[partition] = since_offset if low <= since_offset <= high else low
                # the bar's estimate: to the offset of --until when the broker's answer is plausible
                end = at_until[partition] if first < at_until[partition] <= high else high
                total += max(end - first, 0)
        except KafkaException as exc:
            raise BackfillError(f"cannot read {self.topic!r}: {exc}") from None
        finally:
            consumer.close()
        return starts, total

    def _offsets_at(self, consumer, partitions: list[int], at_ms: int) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        found = consumer.offsets_for_times([TopicPartition(self.topic, p, at_ms) for p in partitions],
                                           timeout=self.timeout_s)
        for tp in found:
            if tp.error is not None:
                raise BackfillError(f"{self.topic}[{tp.partition}]: offsets_for_times: {tp.error}")
        return {tp.partition: tp.offset for tp in found}

    def __iter__(self) -> Iterator[Record]:
        for _, _, _, record in heapq.merge(*(self._partition(p, first) for p, first in self.starts.items())):
            yield record

    def _partition(self, partition: int, first: int) -> Iterator[tuple[int, int, int, Record]]:
        """``(timestamp, partition, offset, record)`` of one partition's part of the window."""
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        consumer = Consumer(self.config)
        consumer.assign([TopicPartition(self.topic, partition, first)])
        try:
            in_window, idle_since = False, time.monotonic()
            while True:
                messages = consumer.consume(BATCH_RECORDS, timeout=0.5)
                if not messages and time.monotonic() - idle_since > self.timeout_s:
                    raise BackfillError(f"{self.topic}[{partition}]: nothing read for {self.timeout_s:.0f}s "
                                        f"and no end of partition")
                for msg in messages:
                    idle_since = time.monotonic()
                    if msg.error() is not None:
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            return
                        raise BackfillError(f"{self.topic}[{partition}]: {msg.error()}")
                    self.read += 1
                    ts_ms = msg.timestamp()[1]
                    if not in_window and ts_ms < self.since_ms:
                        continue  # before the offset of --since
                    if ts_ms >= self.until_ms:
                        return  # the offset of --until
                    in_window = True
                    yield (ts_ms, partition, msg.offset(),
                           Record(msg.value(), msg.key(), partition, msg.offset(), position=msg.offset()))
        finally:
            consumer.close()


# -- the run -----------------------------------------------------------------------------
def run_replay(events: Path | str | KafkaWindow, alerts_out: Path, dlq_path: Path | None = None,
               progress: bool = True, config: DetectorConfig | None = None, pipeline: KeyPipeline | None = None,
               clusters: ClusterDetector | None | bool = True, allowed_lateness_ms: int | None = None,
               sink=None, exculpated_path: Path | None = None, send_exculpated: bool = False,
               jobs: int = 1) -> ReplaySummary:
    """``events``: an events file, or a :class:`KafkaWindow` (a backfill).
    ``allowed_lateness_ms``: the workers' ``DG_ALLOWED_LATENESS_S`` rule (None: learn every event).
    ``sink``: a ``ClickHouseSink`` to store rows, alerts and dead letters in, as the workers do
    (flushed as its batch settings say, and at the end).
    ``exculpated_path``: where to write the exculpated detections (``send_exculpated``: the
    workers' ``DG_SEND_EXCULPATED``, which writes them among the alerts as well).
    ``jobs``: processes that step the keys (``replay_shards``: the same output; 1: this one).
    The workers' own step (``models.step``) on the records, in batches."""
    source = events if isinstance(events, KafkaWindow) else FileLines(Path(events))
    if clusters is True:
        clusters = ClusterDetector()
    summary = ReplaySummary()
    started = time.monotonic()
    bar = _progress_bar(progress, source.total)
    alerts_out = Path(alerts_out)
    alerts_out.parent.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(open(alerts_out, "w", encoding="utf-8"), source.topic, sink, send_exculpated)
    step = None
    try:
        if jobs > 1:  # (forked once the outputs open: a failure to open them leaves no process behind)
            step = ShardedStep(jobs, pipeline or KeyPipeline(config), source_topic=source.topic,
                               allowed_lateness_ms=allowed_lateness_ms, clusters=clusters or None,
                               keep_rows=sink is not None)
        else:
            step = _OneProcess(RequestProcessor(pipeline or KeyPipeline(config), source_topic=source.topic,
                                                allowed_lateness_ms=allowed_lateness_ms, clusters=clusters or None))
        outputs.dlq = open(dlq_path, "w", encoding="utf-8") if dlq_path else None
        outputs.exculpated = open(exculpated_path, "w", encoding="utf-8") if exculpated_path else None
        batch: list[Record] = []
        for record in source:
            batch.append(record)
            if len(batch) < BATCH_RECORDS:
                continue
            for done in step.submit(batch):
                outputs.write(done, summary)
            batch = []
            if bar:
                bar.update(source.done, step.submitted)
        for done in step.submit(batch) + step.finish():
            outputs.write(done, summary)
        if sink is not None:
            sink.flush()
        if bar:
            bar.close(source.done, step.submitted)
    finally:
        outputs.close()
        if step is not None:
            step.close()
    counters = step.counters
    summary.events = counters.events - counters.dead_letters
    summary.bad_records, summary.duplicates, summary.late = counters.dead_letters, counters.duplicates, counters.late
    summary.cluster_seconds = step.cluster_seconds
    summary.seconds = time.monotonic() - started
    summary.keys = step.keys
    summary.state_bytes_per_key = step.state_bytes / step.keys if step.keys else 0.0
    return summary


class _OneProcess:
    """``RequestProcessor.run`` in this process, with :class:`ShardedStep`'s interface."""

    def __init__(self, step: RequestProcessor) -> None:
        self.step = step
        self.states: dict[str, bytes] = {}
        self.submitted = 0

    counters = property(lambda self: self.step.counters)
    cluster_seconds = property(lambda self: self.step.cluster_seconds)
    keys = property(lambda self: len(self.states))
    state_bytes = property(lambda self: sum(map(len, self.states.values())))

    def submit(self, records: list[Record]) -> list[BatchResult]:
        self.submitted += len(records)
        done = self.step.run(records, self.states)
        self.states.update(done.states)
        return [done]

    def finish(self) -> list[BatchResult]:
        return []

    def close(self) -> None:
        pass


@dataclass
class _Outputs:
    """Where a replay's batches go: alerts (as the worker sends them on distill.alerts), dead
    letters, exculpated detections (as the worker records them) and the sink."""

    alerts: object
    topic: str
    sink: object = None
    send_exculpated: bool = False
    dlq: object = None
    exculpated: object = None

    def write(self, batch: BatchResult, summary: ReplaySummary) -> None:
        summary.link_records += len(batch.links)
        # (counted and written to --exculpated also when they are sent: which of the alerts they are)
        sent, held = split_exculpated(batch.alerts)
        if self.send_exculpated:
            sent = batch.alerts
        summary.alerts += len(sent)
        summary.exculpated += len(held)
        for alert in sent:
            self.alerts.write(alert_bytes(alert).decode("utf-8") + "\n")  # as the worker sends it on distill.alerts
        if self.exculpated:
            for alert in held:
                self.exculpated.write(alert_bytes(alert).decode("utf-8") + "\n")
        if self.dlq:
            for dead in batch.dead_letters:
                self.dlq.write(_dead_letter_line(dead))
        if self.sink is not None:
            _store(batch, sent, [] if self.send_exculpated else held, self.sink, self.topic)

    def close(self) -> None:
        for out in (self.alerts, self.dlq, self.exculpated):
            if out:
                out.close()


def _dead_letter_line(dead) -> str:
    try:
        raw = {"raw": dead.value.decode("utf-8")}
    except UnicodeDecodeError:
        raw = {"raw_base64": base64.b64encode(dead.value).decode()}
    where = {"line": dead.offset} if dead.partition < 0 else {"partition": dead.partition, "offset": dead.offset}
    return json.dumps({"reason": dead.reason, **where, **raw}) + "\n"


def _store(batch: BatchResult, sent: list[dict], held: list[dict], sink, topic: str) -> None:
    """The batch's rows, alerts (``sent``), exculpated detections (``held``) and dead letters
    into the sink, as the worker adds them: rows under their Kafka position, so that the sink's
    watermark drops what is stored already (a backfill run twice, or over what a worker wrote,
    stores each record once)."""
    for row, partition, position in batch.rows:
        sink.add(row, partition, position, topic)
    for alert in sent:
        sink.add_alert(alert)
    for alert in held:
        sink.add_exculpated(alert)
    for dead in batch.dead_letters:
        sink.add_dead_letter(dead.reason, dead.source_topic, dead.partition, dead.offset, dead.size)
    if sink.should_flush():
        sink.flush()
