"""The Faust application: topics, the per-key state table, the agents, the query endpoints.

Thin by design: records are decoded and scored by ``distillguard.models`` (through
:class:`~distillguard.models.step.RequestProcessor`) and rows/alerts are handed to
``distillguard.sinks``. Delivery guarantees, in order:

* the state table is co-partitioned with ``llm.requests`` and changelogged once per key per
  flush (:mod:`~distillguard.streams.checkpoint`); each key's state carries the last input
  offset applied, so an event re-read after a crash is not applied twice;
* events are acknowledged (and so their offsets committed) only after their ClickHouse rows
  are flushed; the sink drops rows at or below its per-partition watermark, so rollups count
  every event once;
* alert ids are stable per incident, so a re-sent alert is an update, not a new page;
  alerts leave after their events' rows are stored and before the events are acked, once
  (:mod:`~distillguard.streams.alert_outbox`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import faust

from distillguard.contracts.alert import alert_bytes, split_exculpated
from distillguard.contracts.link_record import link_batch_bytes
from distillguard.devtools.faults import FaultInjection
from distillguard.models.clusters import link_value_key
from distillguard.models.events import parse_rfc3339_ms
from distillguard.models.step import DeadLetter, Record, RequestProcessor
from distillguard.sinks.errors import SinkBackpressureError

from .alert_outbox import AlertOutbox, read_topic_tail
from .checkpoint import Checkpoint
from .clusters_stage import ClusterStage
from .epochs import EpochTracker
from .faust_compat import (acked_offsets, add_commit_gap, allow_rebalance_return_after_end, app_agent_error,
                           faust_commit, flush_while_waiting_empty, known_commit, per_batch_monitor,
                           rewind_uncommitted_after_seeks, set_agent_error_hook, use_fetch_max_wait)
from .feedback_follower import FeedbackFollower
from .holes import HoleGuard, processed_head_gap
from .input_log import InputLog
from .loop_lag import watch_event_loop
from .metrics import WorkerMetrics
from .packed_input import PackedInput
from .settings import KafkaSettings, WorkerSettings
from .topics import resolve_replication_on_start
from .web import faust_web_settings
from .worker_pages import WorkerPages

log = logging.getLogger(__name__)


def faust_app(settings: KafkaSettings, data_dir: Path, *, auto_offset_reset: str,
              replication_probe_topic: str) -> faust.App:
    """The Faust app shape shared by the detector worker and the router.

    ``settings`` (``WorkerSettings`` or ``RouterSettings``, both ``KafkaSettings``) gives the
    broker and its security, the app id, partitions, timeouts and web endpoint;
    ``replication_probe_topic`` a topic created with ``DG_REPLICATION_FACTOR``.
    """
    use_fetch_max_wait(settings.consumer_fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=settings.faust_credentials(),
        store="memory://",
        datadir=str(data_dir / "faust"),
        # -1 (the broker's default) becomes a number when the app starts: Faust needs one.
        topic_replication_factor=max(settings.replication_factor, 1),
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset=auto_offset_reset,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(settings.session_timeout_s / 4, 0.5),
        broker_commit_interval=settings.commit_interval_s,
        consumer_group_instance_id=getattr(settings, "group_instance_id", None),  # (workers only)
        processing_guarantee="at_least_once",
        web_port=settings.web_port,
        web_enabled=True,
        **faust_web_settings(settings),  # loopback unless configured, token beyond
        table_standby_replicas=settings.table_standby_replicas,
        monitor=per_batch_monitor(),  # Faust's own sensor, without its per-message bookkeeping
    )
    allow_rebalance_return_after_end(app)  # (a warning at every start, Faust's own bug)
    resolve_replication_on_start(app, settings, replication_probe_topic)
    return app


def serve_metrics(app: faust.App, metrics) -> None:
    """``/metrics`` in the Prometheus text format, from anything with ``render()``."""

    @app.page("/metrics")
    async def prometheus_metrics(web, request):
        if hasattr(metrics, "publish_tallies"):
            metrics.publish_tallies()
        body, content_type = metrics.render()
        return web.bytes(body, content_type=content_type.split(";")[0])




def worker_app(settings: WorkerSettings, *, pipeline=None, sink=None) -> faust.App:
    """The detector worker's Faust app. ``sink`` defaults to the ClickHouse sink from the env."""
    return DetectorWorker(settings, pipeline=pipeline, sink=sink).app


# How often the worker flushes while Faust waits for its records' acks (stopping, revoking):
# each flush that has rows stores them (a chDB insert), so not every tick of the wait.
WAIT_EMPTY_FLUSH_INTERVAL_S = 0.25
LINK_BATCH_MAX = 2000  # link records a links-topic message, ~300 KB: under Kafka's 1 MiB default


class DetectorWorker(InputLog, PackedInput, ClusterStage, WorkerPages):
    """The worker: topics, the per-key state table, the agents, timers and pages of one app.

    The agents are short ``async for`` loops (``_agents``); a record is decoded and scored by
    the processor in :meth:`handle`, its outputs buffered in the sink, and its ack held by
    :class:`~distillguard.streams.checkpoint.Checkpoint` until the flush has stored them.
    Input holes and epochs: :class:`~distillguard.streams.input_log.InputLog`; cluster
    detection: :class:`~distillguard.streams.clusters_stage.ClusterStage`; the web pages
    and gauges: :class:`~distillguard.streams.worker_pages.WorkerPages`.
    """

    def __init__(self, settings: WorkerSettings, *, pipeline=None, sink=None) -> None:
        self.settings = settings
        data_dir = Path(settings.data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.app = faust_app(settings, data_dir, auto_offset_reset="earliest",
                             replication_probe_topic=settings.requests_topic)
        self.pipeline = pipeline if pipeline is not None else self._default_pipeline()
        self.processor = RequestProcessor(self.pipeline, source_topic=settings.requests_topic,
                                          max_future_ms=int(settings.max_future_s * 1000),
                                          allowed_lateness_ms=int(settings.allowed_lateness_s * 1000),
                                          dlq_max_bytes=settings.dlq_max_bytes)
        self.metrics = WorkerMetrics()
        self.sink = sink if sink is not None else self._default_sink()
        self.app.distillguard_sink = self.sink
        self.app.distillguard_processor = self.processor
        # On-call feedback: a false positive suppresses its entity's alerts on every worker.
        self.feedback = self.app.distillguard_feedback = FeedbackFollower.for_worker(settings, self.sink)
        self.feedback.catch_up()
        self._topics()
        # Alerts raised and not sent yet: sent by the step that raised them, once (see alert_outbox).
        self.outbox = AlertOutbox(self._send_alert, self._alerts_sent_before, max_entries=settings.alert_dedup_max,
                                  on_duplicate=lambda alert: self.metrics.alerts_deduplicated.inc(),
                                  on_sent=self.metrics.alert_hold_seconds.observe)
        self.init_cluster_stage()
        # bytes keys and values: the changelog carries the detector's compact state as is.
        self.key_state = self.app.Table("key-state", partitions=settings.partitions, key_type=bytes,
                                        value_type=bytes)
        self.checkpoint = Checkpoint(self.key_state, flush_producer=self._flush_producer)
        self.last_seen: dict[bytes, tuple[float, int]] = {}
        self.source_next: dict[int, int] = {}  # packed: per partition, the next llm.requests offset handed on
        # Link records waiting to go to the cluster agent, sent as one links-topic message per
        # flush (or per LINK_BATCH_MAX): a message per record cost 29 % of end-to-end time
        # (1,275 events/s with them, 1,784 without, on the dev stream). Sent at the start of each
        # flush, before the events behind them are acked; records re-sent after a crash are
        # learned once (their source offsets).
        self.link_batch: list[bytes] = []
        self._alert_sender: asyncio.Task | None = None  # the task sending the alerts just raised
        # Input partition epochs (streams/epochs.py): positions (epoch, offset) instead of offsets,
        # so a replaced log (broker back empty, topic recreated) is processed, not deduplicated.
        self.epochs = EpochTracker()
        self.holes = HoleGuard()
        # One record at a time through holes and processing: the stream's agent and the
        # trailing-hole timer (refill_trailing_holes) both process input records.
        self.input_turn = asyncio.Lock()
        self.faults = FaultInjection()
        self.skipping = 0
        self.crashed: dict[str, str] = {}  # agent name -> its exception's type (see _on_agent_error)
        self.init_pages()
        self._agents()
        self._timers()
        self._signals()

    def _default_pipeline(self):
        from distillguard.models.pipeline import KeyPipeline

        pipeline = KeyPipeline(self.settings.detector_config())
        if self.settings.detector_overrides_file:
            c = pipeline.config
            log.info("detector overrides from %s: %d keys and %d accounts allowlisted, %d threshold scales, "
                     "min_events %d", self.settings.detector_overrides_file, len(c.allow_keys), len(c.allow_accounts),
                     len(c.key_threshold_scale) + len(c.account_threshold_scale), c.min_events)
        return pipeline

    @staticmethod
    def _default_sink():
        from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink

        sink = ClickHouseSink(ClickHouseSettings())
        log.info("ClickHouse sink: %s", sink.settings.describe())
        return sink

    def _topics(self) -> None:
        settings, app = self.settings, self.app
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.requests = app.topic(settings.input_topic, partitions=settings.partitions, **raw)
        self.dlq = app.topic(settings.dlq_topic, partitions=settings.partitions, **raw)
        self.alerts = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
        self.links = app.topic(settings.links_topic, partitions=1, **raw)

    # -- agents, timers, signals: Faust's shapes, each a few lines calling a method --------
    def _agents(self) -> None:
        app = self.app

        @app.agent(self.requests, name="process-requests")
        async def process_requests(stream):
            async for event in stream.noack().events():
                await self.take_request(event)

        @app.agent(self.links, name="detect-clusters")
        async def detect_clusters(stream):
            # Acked after the flush, as input events are: the alerts a record raises are stored and
            # sent first (a kill before that re-reads the record; the outbox drops a re-raised
            # alert that had left).
            async for event in stream.noack().events():
                await self.take_link_record(event)

        agents = [process_requests, detect_clusters] + self.link_value_agents()
        # An agent whose actor died on an exception that escaped it (a bug: records never do)
        # leaves an unacked event that blocks every later commit: /health then answers 503 so
        # that the orchestrator restarts the worker (it resumes from the committed offsets).
        for agent in agents:
            set_agent_error_hook(agent, self._on_agent_error)

    def _timers(self) -> None:
        app, settings = self.app, self.settings

        @app.timer(settings.flush_interval_s)
        async def flush_on_age() -> None:
            self.metrics.publish_tallies()
            # (a flush since the last tick leaves rows at most two ticks old: see Checkpoint)
            if self.flush_waiting() and not self.checkpoint.flushed_since_asked():
                await self.flush()

        @app.timer(settings.commit_interval_s)
        async def commit_on_own_clock() -> None:
            await self.commit()

        @app.timer(settings.epoch_check_interval_s)
        async def verify_input_logs() -> None:
            await self.verify_input_logs()

        @app.timer(5.0)
        async def refill_trailing_holes() -> None:
            await self.refill_trailing_holes()

        @app.timer(60.0)
        async def evict_idle_keys() -> None:
            self.evict_idle_keys()

        if hasattr(self.sink, "check_rollups"):
            @app.timer(self.sink.settings.rollup_check_interval_s)
            async def check_rollups() -> None:
                # Keeps what the rollup check on the next start reads (after a kill) to one interval.
                await asyncio.to_thread(self.sink.check_rollups)

        @app.task
        async def watch_loop_lag() -> None:
            await watch_event_loop(self.metrics.event_loop_lag_seconds.observe)

        @app.task
        async def follow_feedback() -> None:
            self.feedback.start()

        @app.task
        async def on_start() -> None:
            log.info("worker started: %s", json.dumps({"bootstrap": settings.kafka_bootstrap,
                                                       "topic": settings.input_topic}))

    def _signals(self) -> None:
        app = self.app
        source_topics = {self.settings.input_topic, self.settings.links_topic} | (
            {self.settings.link_values_topic} if self.settings.link_values_partitioned else set())

        def logs_found_replaced(source) -> list:
            # a log found replaced (verify_input_logs) is read from its start, whatever is committed on it
            return [tp for tp in source if tp.topic == self.settings.input_topic
                    and self.epochs.replaced(tp.partition)]

        @app.on_partitions_assigned.connect
        async def on_assigned(app, assigned, **kwargs) -> None:
            # before recovery's seek, which follows
            rewind_uncommitted_after_seeks(app, source_topics, logs_found_replaced)
            self.outbox.mark_stale()  # the previous owner of these partitions may have sent their alerts
            # Another worker may have stored rows of these partitions since we last looked.
            await asyncio.to_thread(self.sink.refresh_watermarks)

        @app.on_partitions_revoked.connect
        async def on_revoked(app, revoked, **kwargs) -> None:
            self.forget_clusters_if_revoked(revoked)

        # Stopping, Faust waits for the acks that only a flush gives, its timers ended.
        flush_while_waiting_empty(app, self.flush_pending, WAIT_EMPTY_FLUSH_INTERVAL_S,
                                  stop_timeout_s=self.settings.stop_timeout_s,
                                  revoke_timeout_s=self.settings.revoke_timeout_s)

    async def _on_agent_error(self, agent, exc: BaseException) -> None:
        self.crashed[agent.name] = type(exc).__name__  # no message: it could quote a record
        log.error("agent %s crashed (%s): /health now reports unhealthy", agent.name, type(exc).__name__)
        await app_agent_error(self.app, agent, exc)

    # -- one input record --------------------------------------------------------------
    async def take_request(self, event) -> None:
        """An input record from the stream: holes before it filled first, then processed."""
        if self._injected_skip():
            return
        partition = event.message.partition
        async with self.input_turn:
            try:
                if not self.holes.known(partition):
                    self.holes.start(partition, await self.first_offset_of(event.message.tp))
                if not self.holes.admit(partition, event.message.offset):
                    await self.fill_hole(event.message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the broker could not be read: logged and counted
                log.exception("hole before %s:%s not filled", partition, event.message.offset)
                self.metrics.hole_errors.inc()
            await self.process(event)

    def _injected_skip(self) -> bool:
        """The fault test's stand-in for records lost on their way to the agent."""
        fault = self.faults.consumer_skip_file
        if fault is not None and not self.skipping and fault.exists():
            fault.unlink()
            self.skipping = 3
        if self.skipping:
            self.skipping -= 1
            return True
        return False

    async def process(self, event) -> None:
        """Handle one record (a worker never dies on a record: a failure is dead-lettered),
        then hold its ack for the flush."""
        self.metrics.input_age_seconds.observe(max(0.0, time.time() - event.message.timestamp))
        try:
            await self.handle(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a worker never dies on a record
            log.exception("record %s:%s failed", event.message.partition, event.message.offset)
            await self._dead_letter_failed(event.message, exc)
        self.checkpoint.processed(event)
        self.holes.processed(event.message.partition, event.message.offset)
        if (self.sink.should_flush() or self.alerts_stuck()) and not self.checkpoint.flushing:
            # Flush beside the stream, not in it: the agent keeps scoring while ClickHouse
            # writes (back-pressure, not this await, is what stops it when CH is behind).
            # An alert still queued after its send failed flushes at once: the flush retries it.
            self.app.loop.create_task(self.flush())

    async def _dead_letter_failed(self, message, exc: Exception) -> None:
        try:
            await self.send_dead_letter(self.processor.failed(message, exc))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - not even dead-letterable: say where it is, carry on
            log.exception("record %s:%s could not be dead-lettered", message.partition, message.offset)
            self.metrics.dead_letter_errors.inc()

    async def handle(self, event) -> None:
        """A record of ``llm.requests`` stepped as a batch of one, by the envelopes' code
        (streams/record_step.py); with DG_READ_PACKED every message is an envelope."""
        if self.settings.read_packed:  # (streams/packed_input.py)
            return await self.handle_envelope(event)
        message = event.message
        record = Record(message.value, message.key, message.partition, message.offset)
        if not await self.place_record(record, message):  # a new epoch began here and stepped it
            self.count_duplicate_read()
            return
        await self.step_records([record], message.partition)

    async def send_link_record(self, rec, partition: int) -> None:
        """The key's behaviour to the cluster agent; its link values to their partitions, each
        naming the input partition it comes from (the link-values stage's SenderClock)."""
        self.link_batch.append(rec.to_bytes())
        if len(self.link_batch) >= LINK_BATCH_MAX:
            await self._send_link_batch()
        if self.settings.link_values_partitioned:
            for kind, link_value in self.linking.values_to_link(rec):
                if self.refresh_links.due(rec.api_key_id, (kind, link_value), rec.ts_ms):
                    await self.link_values.send(key=link_value_key(kind, link_value),
                                                value=json.dumps([kind, rec.api_key_id, rec.ts_ms, partition]).encode())

    async def _send_link_batch(self) -> None:
        if self.link_batch:
            payload = link_batch_bytes(self.link_batch)
            self.link_batch.clear()
            await self.links.send(key=b"links", value=payload, partition=0)

    # -- outputs -----------------------------------------------------------------------
    def suppressed(self, alert: dict) -> bool:
        if self.feedback.suppresses(alert):
            self.metrics.alerts_suppressed.labels(entity_type=alert["entity_type"]).inc()
            return True
        return False

    async def raise_alerts(self, alerts: list[dict]) -> None:
        """Alerts of a step (or of the cluster agent): each not suppressed by a false positive
        gets its ClickHouse row buffered and goes into the outbox, sent at once; an exculpated
        detection is only recorded (``is_exculpated``), unless ``DG_SEND_EXCULPATED``."""
        sent, held = split_exculpated([a for a in alerts if not self.suppressed(a)], self.settings.send_exculpated)
        for alert in held:
            await self.add_to_sink(self.sink.add_exculpated, alert)
            self.metrics.alerts_exculpated.labels(entity_type=alert["entity_type"]).inc()
        for alert in sent:
            await self.add_to_sink(self.sink.add_alert, alert)
            self.outbox.add(alert["entity_id"].encode("utf-8", "surrogatepass"), alert)
        if sent:
            self.send_alerts_soon()  # now, not awaited: a page does not wait for the rows' flush

    def alerts_stuck(self) -> bool:
        """Alerts queued with no send under way: their send failed (the broker is away), and a
        flush retries them before any ack. Alerts just raised are not: their own task is sending
        them (until 2026-12-05 a record that raised an alert also started a flush when none was
        under way, each a chDB insert of ~70-100 ms of CPU, on top of the flush timer's)."""
        return bool(len(self.outbox)) and (self._alert_sender is None or self._alert_sender.done())

    def send_alerts_soon(self) -> None:
        """Send the alerts just raised now, in a task of their own, before their rows are stored
        (a page does not wait for ClickHouse). Not awaited by the step: an await between a
        state's computation and its write lets a rebalance or an epoch's rewind run there, and
        the stale state then written counted re-read events twice (a send blocks while the
        broker is away: tests/integration/test_partition_epochs.py saw a key learn more events
        than it sent)."""
        if self._alert_sender is None or self._alert_sender.done():
            self._alert_sender = self.app.loop.create_task(self._send_alerts_now())

    async def _send_alerts_now(self) -> None:
        """Send until the outbox is empty; a broker error leaves the rest queued for the flush,
        which sends them before their events are acked."""
        try:
            while len(self.outbox):
                await self.outbox.send_pending()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the broker: the flush retries before any ack
            log.warning("sending alerts failed, the flush retries: %s: %s", type(exc).__name__, exc)

    async def _send_alert(self, key: bytes, alert: dict) -> None:
        await self.alerts.send(key=key, value=alert_bytes(alert))
        self.metrics.alerts.labels(severity=alert["severity"]).inc()
        self.metrics.alert_delay_seconds.observe(max(0.0, time.time() - parse_rfc3339_ms(alert["ts"]) / 1000))

    def _alerts_sent_before(self) -> list[bytes]:
        settings = self.settings
        values, complete = read_topic_tail(settings.confluent_config(), f"{settings.app_id}-alerts-sent",
                                           settings.alerts_topic, settings.alert_dedup_tail)
        if not complete:
            log.warning("alerts topic tail not read to its end (%d read): an alert may be sent twice", len(values))
        return values

    async def send_dead_letter(self, dead: DeadLetter) -> None:
        await self.dlq.send(key=dead.key, value=dead.value, headers=dead.headers())
        stored = self.sink.stored_position(dead.source_topic, dead.partition)
        await self.add_to_sink(self.sink.add_dead_letter, dead.reason, dead.source_topic, dead.partition,
                               self.epochs.position(dead.partition, dead.offset, stored), dead.size)
        self.metrics.dead_letters.labels(reason=dead.reason.split(":", 1)[0][:40]).inc()

    async def add_to_sink(self, add, *args) -> None:
        while True:
            try:
                add(*args)
                return
            except SinkBackpressureError as exc:
                # ClickHouse is behind: stop consuming (lag grows in Kafka, not in memory).
                self.metrics.backpressure.inc()
                await self.flush()
                await asyncio.sleep(exc.retry_after)

    # -- flush -> changelog -> ack -------------------------------------------------------
    def flush_waiting(self) -> bool:
        """Whether records wait for a flush to be acked, or the sink's rows to be stored."""
        return bool(len(self.checkpoint)) or self.sink.should_flush()

    async def flush_pending(self) -> None:
        """Flush what waits for a flush, the link members' checkpoint too (with the link-values
        stage); a failure is logged and kept for the next call, as the timers' are, and the
        next waits a flush interval (ClickHouse or the broker down: retried on the timer's clock)."""
        try:
            if self.flush_waiting() and not await self.flush():
                await asyncio.sleep(self.settings.flush_interval_s)
            if self.settings.link_values_partitioned:
                await self.changelog_link_members()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - kept for the next flush; the wait goes on
            log.warning("flush while Faust waits for acks failed (%s): kept for the next", type(exc).__name__)

    async def flush(self) -> bool:
        """Link records out, then the sink's rows stored, alerts sent, states changelogged and
        the records acked (the Checkpoint's order); a failure keeps them for the next flush.
        Returns whether it went through."""
        return await self.checkpoint.flush(self._store_outputs)

    async def _store_outputs(self) -> bool:
        # Inside the checkpoint's flush: every record it acks has its link records in this batch.
        await self._send_link_batch()
        try:
            # Any alert a failed send left, first: whatever ClickHouse does, it must not be
            # held back (the steps send alerts as they are raised: usually none is left).
            await self.outbox.send_pending()
        except Exception as exc:  # noqa: BLE001 - the broker: keep the events unacked, retry next tick
            log.warning("sending alerts failed, will retry: %s: %s", type(exc).__name__, exc)
            return False
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.sink.flush)
        except Exception as exc:  # noqa: BLE001 - keep the events unacked, retry next tick
            self.metrics.sink_errors.inc()
            log.warning("ClickHouse flush failed, will retry: %s", exc)
            return False
        self.metrics.sink_flush_seconds.observe(time.perf_counter() - started)
        await self._send_sink_rejected()
        return True

    async def _flush_producer(self) -> None:
        await self.app.producer.flush()

    async def _send_sink_rejected(self) -> None:
        """Rows ClickHouse refused (in its dlq table already): their records to the dead-letter
        topic before their events are acked; a dlq row it refused too counts as not dead-lettered.
        Records are looked up among all unacked events: a flush also takes rows added while it ran."""
        rejected = self.sink.take_rejected()
        if not rejected:
            return
        # (envelopes hold records of other offsets: their records are in the dlq table only)
        messages = [] if self.settings.read_packed else [event.message for event in self.checkpoint.unacked]
        for dead in self.processor.rejected_by_sink(rejected, messages):
            try:
                await self.dlq.send(key=dead.key, value=dead.value, headers=dead.headers())
            except Exception:  # noqa: BLE001 - in the dlq table already: never hold the flush back
                log.exception("record %s:%s refused by ClickHouse could not be sent to the dead-letter topic",
                              dead.partition, dead.offset)
                self.metrics.dead_letter_errors.inc()
        for row in rejected:
            if row.table == "dlq":
                self.metrics.dead_letter_errors.inc()
            else:
                self.metrics.sink_rejected.labels(table=row.table).inc()

    async def commit(self) -> None:
        """Commit acked offsets every DG_COMMIT_INTERVAL_S, beside Faust's own commit task.

        Faust's task dies on the first commit that raises (seen: IllegalGenerationError when
        the broker came back from a restart) and is not restarted: offsets then stayed where
        they were for good (1 run in 4 of the broker-restart fault test), the group's lag
        grew forever and Faust's list of acked offsets with it. ``Consumer.commit`` lets one
        commit run at a time, so the two never overlap.
        """
        consumer = self.app.consumer
        pending = self.checkpoint.lowest_unacked()  # per partition, the lowest offset waiting for a flush
        for tp, acked in acked_offsets(consumer):
            if tp.topic == self.settings.input_topic:
                # Records processed and stored whose acks Faust lost in a rebalance (see
                # processed_head_gap): passed to its commit as a gap, or the commit waits for ever.
                gap = processed_head_gap(known_commit(consumer, tp), acked, self.holes.expected(tp.partition),
                                         pending.get(tp.partition))
                if gap is not None:
                    add_commit_gap(consumer, tp, gap)
        try:
            await consumer.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried on the next tick
            self.metrics.commit_errors.inc()
            log.warning("offset commit failed, will retry: %s: %s", type(exc).__name__, exc)

    def evict_idle_keys(self) -> None:
        # Bound the table: keys not seen for key_idle_ttl are dropped (a tombstone on the changelog).
        horizon = time.monotonic() - self.settings.key_idle_ttl_s
        for state_key in [k for k, (seen, _) in self.last_seen.items() if seen < horizon]:
            _, partition = self.last_seen.pop(state_key)
            if self.key_state.data.pop(state_key, None) is not None:
                self.key_state.send_changelog(partition, state_key, None)
            self.checkpoint.forget(state_key)
        self.metrics.keys.set(len(self.key_state.data))

    def partition_start(self, tp) -> int:
        """Where the group resumes an input partition: its committed offset, else 0.

        From Faust's own record of the commit (read when the partition was assigned), with no
        broker call on the agent's path. Nothing committed: the worker reads from the earliest
        record, and the reader skips what retention removed.
        """
        committed = faust_commit(self.app.consumer, tp)
        return committed if committed is not None else 0

    def next_input_offset(self, tp) -> int:
        """The offset of an input partition's next record to process: where its stream is, or,
        before any record of it arrived, where the group resumes it."""
        expected = self.holes.expected(tp.partition)
        return expected if expected is not None else self.partition_start(tp)
