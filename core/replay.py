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

from distillguard.models.clusters import ClusterDetector, link_record
from distillguard.models.events import BadRecord, parse_event
from distillguard.models.pipeline import DetectorConfig, KeyPipeline, state_last_ts


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
    """``allowed_lateness_ms``: the workers' ``DG_ALLOWED_LATENESS_S`` rule (None: learn every event)."""
    pipeline = pipeline or KeyPipeline(config)
    if clusters is True:
        clusters = ClusterDetector()
    states: dict[str, bytes] = {}
    summary = ReplaySummary()
    started = last_report = time.monotonic()
    alerts_out = Path(alerts_out)
    alerts_out.parent.mkdir(parents=True, exist_ok=True)
    dlq = open(dlq_path, "w", encoding="utf-8") if dlq_path else None
    try:
        with _open(Path(events_path)) as src, open(alerts_out, "w", encoding="utf-8") as out:
            for line_no, line in enumerate(src, 1):
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                event = parse_event(line)
                if isinstance(event, BadRecord):
                    summary.bad_records += 1
                    if dlq:
                        try:
                            raw = {"raw": line.decode("utf-8")}
                        except UnicodeDecodeError:
                            raw = {"raw_base64": base64.b64encode(line).decode()}
                        dlq.write(json.dumps({"reason": event.reason, "line": line_no, **raw}) + "\n")
                    continue
                summary.events += 1
                state = states.get(event.api_key_id)
                if allowed_lateness_ms is not None and state is not None and \
                        event.ts_ms < state_last_ts(state) - allowed_lateness_ms:
                    summary.late += 1
                    continue
                result = pipeline.step(state, event)
                if result.duplicate:
                    summary.duplicates += 1
                    continue
                states[event.api_key_id] = result.state
                alerts = [result.alert]
                if clusters:
                    rec = link_record(event, result)
                    if rec is not None:
                        began = time.perf_counter()
                        alerts.extend(clusters.observe_link(rec))
                        summary.cluster_seconds += time.perf_counter() - began
                        summary.link_records += 1
                for alert in alerts:
                    if alert is not None:
                        summary.alerts += 1
                        out.write(json.dumps(alert, separators=(",", ":")) + "\n")
                if progress and summary.events % 10_000 == 0 and time.monotonic() - last_report > 2:
                    last_report = time.monotonic()
                    rate = summary.events / (last_report - started)
                    print(f"  {summary.events:,} events, {summary.alerts} alerts, {rate:,.0f} events/s",
                          file=sys.stderr, flush=True)
    finally:
        if dlq:
            dlq.close()
    summary.seconds = time.monotonic() - started
    summary.keys = len(states)
    summary.state_bytes_per_key = sum(map(len, states.values())) / len(states) if states else 0.0
    return summary
