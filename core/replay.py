"""``distillguard replay``: the workers' detector over an events file, without Kafka.

Event-time order is the file's order (benchmark streams are written in ``ts`` order);
deterministic; bad lines are skipped, counted, and written with their reason to ``--dlq``.
"""
from __future__ import annotations

import base64
import gzip
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from distillguard.models.clusters import ClusterDetector
from distillguard.models.pipeline import DetectorConfig, KeyPipeline
from distillguard.models.step import BatchResult, Record, RequestProcessor

BATCH_RECORDS = 1000  # records stepped at a time (a key's state stays decoded within a batch)


@dataclass
class ReplaySummary:
    events: int = 0
    bad_records: int = 0
    duplicates: int = 0
    late: int = 0  # beyond the allowed lateness: not learned (as in the workers)
    alerts: int = 0
    keys: int = 0
    seconds: float = 0.0
    state_bytes_per_key: float = 0.0
    # the cross-key detector's share: what the workers' one-partition cluster agent must keep up with
    link_records: int = 0
    cluster_seconds: float = 0.0

    def describe(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        return (f"replay: {self.events} events, {self.bad_records} bad records, {self.duplicates} duplicates, "
                f"{self.alerts} alerts, {self.keys} keys, {self.seconds:.1f}s ({rate:,.0f} events/s), "
                f"{self.state_bytes_per_key:.0f} bytes of state per key")


def _open(path: Path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def run_replay(events_path: Path, alerts_out: Path, dlq_path: Path | None = None, progress: bool = True,
               config: DetectorConfig | None = None, pipeline: KeyPipeline | None = None,
               clusters: ClusterDetector | None | bool = True,
               allowed_lateness_ms: int | None = None) -> ReplaySummary:
    """``allowed_lateness_ms``: the workers' ``DG_ALLOWED_LATENESS_S`` rule (None: learn every event).
    The workers' own step (``models.step``) on the file's lines, in batches; a line's offset
    is its line number."""
    if clusters is True:
        clusters = ClusterDetector()
    step = RequestProcessor(pipeline or KeyPipeline(config), source_topic=str(events_path),
                            allowed_lateness_ms=allowed_lateness_ms, clusters=clusters or None)
    states: dict[str, bytes] = {}
    summary = ReplaySummary()
    started = last_report = time.monotonic()
    alerts_out = Path(alerts_out)
    alerts_out.parent.mkdir(parents=True, exist_ok=True)
    dlq = open(dlq_path, "w", encoding="utf-8") if dlq_path else None
    try:
        with _open(Path(events_path)) as src, open(alerts_out, "w", encoding="utf-8") as out:
            batch: list[Record] = []
            for line_no, line in enumerate(src, 1):
                line = line.rstrip(b"\r\n")
                if line:
                    batch.append(Record(line, offset=line_no))
                if len(batch) < BATCH_RECORDS:
                    continue
                _write(step.run(batch, states), states, summary, out, dlq)
                batch = []
                if progress and time.monotonic() - last_report > 2:
                    last_report = time.monotonic()
                    _report(step, summary, last_report - started)
            _write(step.run(batch, states), states, summary, out, dlq)
    finally:
        if dlq:
            dlq.close()
    counters = step.counters
    summary.events = counters.events - counters.dead_letters
    summary.bad_records, summary.duplicates, summary.late = counters.dead_letters, counters.duplicates, counters.late
    summary.cluster_seconds = step.cluster_seconds
    summary.seconds = time.monotonic() - started
    summary.keys = len(states)
    summary.state_bytes_per_key = sum(map(len, states.values())) / len(states) if states else 0.0
    return summary


def _write(batch: BatchResult, states: dict[str, bytes], summary: ReplaySummary, out, dlq) -> None:
    states.update(batch.states)
    summary.link_records += len(batch.links)
    summary.alerts += len(batch.alerts)
    for alert in batch.alerts:
        out.write(json.dumps(alert, separators=(",", ":")) + "\n")
    if dlq:
        for dead in batch.dead_letters:
            try:
                raw = {"raw": dead.value.decode("utf-8")}
            except UnicodeDecodeError:
                raw = {"raw_base64": base64.b64encode(dead.value).decode()}
            dlq.write(json.dumps({"reason": dead.reason, "line": dead.offset, **raw}) + "\n")


def _report(step: RequestProcessor, summary: ReplaySummary, seconds: float) -> None:
    events = step.counters.events
    print(f"  {events:,} events, {summary.alerts} alerts, {events / seconds:,.0f} events/s", file=sys.stderr,
          flush=True)
