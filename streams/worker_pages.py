"""The worker's pages (/health, /metrics, queries) and the gauges behind them.

A mixin of :class:`~distillguard.streams.app.DetectorWorker` (needs its ``app``,
``settings``, ``sink``, ``metrics``, ``processor``, ``pipeline``, ``key_state``, ``holes``,
``epochs``, ``crashed`` and ``next_input_offset``).
"""
from __future__ import annotations

import asyncio
import logging
import time

from .faust_compat import known_commit, paused_partitions
from .health import CommitWatch, HealthJudge
from .recovery import RESTART, STALLED, RecoveryWatch
from .web import state_without_verdict

log = logging.getLogger(__name__)


def vars_of(counters) -> dict:
    return {name: getattr(counters, name) for name in counters.__slots__}


class WorkerPages:
    """/health and the query pages; the gauges updated every 5 s."""

    def init_pages(self) -> None:
        settings = self.settings
        self.progress: dict[int, tuple[int, float]] = {}  # input partition -> (next offset, since when)
        self.stalled: set[int] = set()
        self.recovery_watch = RecoveryWatch(settings.recovery_stall_s)
        self.commit_watch = CommitWatch(settings.stall_after_s)
        self.health_judge = HealthJudge(stall_after_s=settings.stall_after_s,
                                        sink_failing_unhealthy_s=settings.sink_failing_unhealthy_s)
        self._pages()

        @self.app.timer(5.0)
        async def update_gauges() -> None:
            self.update_gauges()

    def _pages(self) -> None:
        from .app import serve_metrics

        app, sink = self.app, self.sink
        if getattr(sink, "client", None) is not None:  # the read-only dashboard, from the chDB owner
            from distillguard.dashboard.server import mount_on_faust

            mount_on_faust(app, sink.read_client, sink.db)  # web threads: the read client

        @app.page("/health")
        async def health(web, request):
            body, healthy = self.health()
            return web.json(body, status=200 if healthy else 503)

        serve_metrics(app, self.metrics)

        @app.page("/summary")
        async def summary(web, request):
            limit = int(request.query.get("limit", "10"))
            return web.json({"top_keys": await asyncio.to_thread(sink.summary, limit)})

        @app.page("/alerts")
        async def alert_rows(web, request):
            limit = int(request.query.get("limit", "100"))
            return web.json({"alerts": await asyncio.to_thread(sink.alert_rows, limit)})

        @app.page("/query/tables")
        async def table_counts(web, request):
            return web.json(await asyncio.to_thread(sink.table_counts))

        @app.page("/query/state")
        async def state_of(web, request):
            # Lets tests and operators inspect one key's recovered state (size and events seen).
            key = request.query.get("key", "").encode()
            value = self.key_state.get(key)
            return web.json({"key": key.decode(), "bytes": len(value) if value else 0,
                             "info": state_without_verdict(self.pipeline.describe_state(value)) if value else None})

    def sink_failing_since(self) -> float | None:
        return getattr(self.sink, "_failing_since", None)  # (sink clock: time.monotonic, as here)

    def health(self) -> tuple[dict, bool]:
        now = time.monotonic()
        verdict = self.health_judge.verdict(
            now=now, crashed=self.crashed, recovery_stalled=self.recovery_watch.stalled,
            sink_failing_since=self.sink_failing_since(), commit_stalled=self.commit_watch.stalled,
            input_stalled=self.stalled, epochs_undecided=self.epochs.checking_for(now))
        return {"status": verdict.status, **verdict.details, "counters": vars_of(self.processor.counters),
                "partitions": self.input_partitions(), "recovery": self.recovery_state(),
                "epochs": self.epochs_detected()}, verdict.healthy

    def epochs_detected(self) -> dict:
        """Per input partition: its last new log (epoch, first offset, what was stored of the old one)."""
        return {str(p): {"epoch": e.epoch, "from_offset": e.offset, "previous_stored": e.stored_offset}
                for p, e in self.epochs.detected.items()}

    def recovery_state(self) -> dict:
        """Faust's table recovery: in progress or not, and each changelog partition it still
        reads (the offset it has applied, the end it waits for)."""
        try:
            recovery = self.app.tables.recovery
            behind = {}
            for tp, high in list(recovery.active_highwaters.items()):
                offset = recovery.active_offsets.get(tp)
                if high is not None and (-1 if offset is None else offset) < high:
                    behind[f"{tp.topic}:{tp.partition}"] = [offset, high]
            return {"in_progress": bool(recovery.in_recovery), "behind": behind}
        except Exception as exc:  # noqa: BLE001 - mid-rebalance: say so rather than fail /health
            return {"error": type(exc).__name__}

    def input_partitions(self) -> dict:
        """Per assigned input partition: where processing is, what the broker has, whether
        Faust has it paused (recovery, back-pressure). Where on-call looks when one lags."""
        consumer = self.app.consumer
        try:
            assigned = sorted(tp for tp in consumer.assignment() if tp.topic == self.settings.input_topic)
            paused = paused_partitions(consumer)
            return {str(tp.partition): {"next_offset": self.holes.expected(tp.partition),
                                        "committed": known_commit(consumer, tp),
                                        "high_watermark": consumer.highwater(tp),
                                        "paused": tp in paused, "stalled": tp.partition in self.stalled,
                                        "commit_stalled": tp.partition in self.commit_watch.stalled}
                    for tp in assigned}
        except Exception as exc:  # noqa: BLE001 - mid-rebalance: say so rather than fail /health
            return {"error": type(exc).__name__}

    def watch_recovery(self, now: float) -> None:
        """Restart a table recovery that reads nothing for DG_RECOVERY_STALL_S; report it if
        that does not help (/health answers 503: the orchestrator restarts the worker)."""
        recovery = self.app.tables.recovery
        action = self.recovery_watch.observe(bool(recovery.in_recovery), dict(recovery.active_offsets), now)
        if action == RESTART:
            log.warning("table recovery has read nothing for %.0fs (behind: %s): restarting it",
                        self.settings.recovery_stall_s, self.recovery_state().get("behind"))
            self.metrics.recovery_restarts.inc()
            recovery.signal_recovery_start.set()
        elif action == STALLED:
            log.error("table recovery still reads nothing after a restart (behind: %s): reporting unhealthy",
                      self.recovery_state().get("behind"))
        self.metrics.recovery_stalled.set(int(self.recovery_watch.stalled))

    def update_gauges(self) -> None:
        now = time.monotonic()
        metrics, sink = self.metrics, self.sink
        self.watch_recovery(now)
        metrics.keys.set(len(self.key_state.data))
        metrics.state_bytes.set(sum(map(len, self.key_state.data.values())))
        metrics.sink_buffered.set(sink.buffered)
        failing_since = self.sink_failing_since()
        metrics.sink_failing_seconds.set(0 if failing_since is None else now - failing_since)
        metrics.epoch_undecided_seconds.set(max(self.epochs.checking_for(now).values(), default=0))
        try:
            consumer = self.app.consumer
            assigned = [tp for tp in consumer.assignment() if tp.topic == self.settings.input_topic]
            highs = {tp: consumer.highwater(tp) for tp in assigned}
        except Exception:  # noqa: BLE001 - a gauge must not stop the worker (e.g. mid-rebalance)
            return
        metrics.lag.clear()  # only the partitions assigned now
        metrics.stalled.clear()
        metrics.commit_stalled.clear()
        self.commit_watch.keep_only({tp.partition for tp in highs})
        for tp, high in highs.items():
            self._partition_gauges(tp, high, now)

    def _partition_gauges(self, tp, high: int | None, now: float) -> None:
        next_offset = self.next_input_offset(tp)
        moved = self.progress.get(tp.partition)
        if moved is None or moved[0] != next_offset:
            moved = self.progress[tp.partition] = (next_offset, now)
        if high is None:
            return
        metrics = self.metrics
        labels = {"topic": tp.topic, "partition": str(tp.partition)}
        metrics.lag.labels(**labels).set(max(0, high - next_offset))
        is_stalled = high > next_offset and now - moved[1] >= self.settings.stall_after_s
        metrics.stalled.labels(**labels).set(int(is_stalled))
        (self.stalled.add if is_stalled else self.stalled.discard)(tp.partition)
        committed = known_commit(self.app.consumer, tp)
        metrics.commit_stalled.labels(**labels).set(
            int(self.commit_watch.observe(tp.partition, committed, high, now)))
