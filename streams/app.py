"""The Faust application: topics, the per-key state table, the agents, the query endpoints.

Thin by design: records are decoded and scored by ``distillguard.models`` (through
:class:`~distillguard.models.step.RequestProcessor`) and rows/alerts are handed to
``distillguard.sinks``. Delivery guarantees, in order:

* the state table is co-partitioned with ``llm.requests`` and changelogged on every set;
  each key's state carries the last input offset applied, so an event re-read after a crash
  is not applied twice;
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

from distillguard.contracts.alert import alert_bytes
from distillguard.models.clusters import (ClusterDetector, LinkMembers, LinkRefresh, link_batch_bytes, link_record,
                                          link_records_in, link_step, link_value_key)
from distillguard.faults import FaultInjection
from distillguard.models.events import parse_event
from distillguard.models.step import DeadLetter, RequestProcessor
from distillguard.sinks.errors import SinkBackpressure

from .alert_outbox import AlertOutbox, read_topic_tail
from .epochs import NEW, EpochTracker
from .feedback_follower import FeedbackFollower
from .health import CommitWatch, HealthJudge
from .holes import HoleGuard, processed_head_gap, read_first_records, read_group_commit, read_partition
from .metrics import WorkerMetrics
from .recovery import RESTART, STALLED, RecoveryWatch
from .settings import KafkaSettings, WorkerSettings
from .topics import resolve_replication_on_start
from .web import faust_web_settings, state_without_verdict

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
    )
    resolve_replication_on_start(app, settings, replication_probe_topic)
    return app


def use_fetch_max_wait(ms: int) -> None:
    """Make Faust's consumers wait at most ``ms`` for records at the broker (Faust hard-codes
    1,500 ms in its aiokafka driver and offers no setting). One value per process: a worker
    or a router process builds one app."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread = faust_aiokafka.AIOKafkaConsumerThread
    create = getattr(thread, "_dg_create_worker_consumer", thread._create_worker_consumer)  # noqa: SLF001

    def _create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = ms  # noqa: SLF001 - read by the fetcher it starts
        return consumer

    thread._dg_create_worker_consumer = create
    thread._create_worker_consumer = _create_worker_consumer


def serve_metrics(app: faust.App, metrics) -> None:
    """``/metrics`` in the Prometheus text format, from anything with ``render()``."""

    @app.page("/metrics")
    async def prometheus_metrics(web, request):
        body, content_type = metrics.render()
        return web.bytes(body, content_type=content_type.split(";")[0])


def create_app(settings: WorkerSettings, *, pipeline=None, sink=None) -> faust.App:
    """Build the worker app. ``sink`` defaults to the ClickHouse sink from the settings' env."""
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust_app(settings, data_dir, auto_offset_reset="earliest", replication_probe_topic=settings.requests_topic)
    if pipeline is None:
        from distillguard.models.pipeline import KeyPipeline

        pipeline = KeyPipeline(settings.detector_config())
    if settings.detector_overrides_file:
        c = pipeline.config
        log.info("detector overrides from %s: %d keys and %d accounts allowlisted, %d threshold scales, "
                 "min_events %d", settings.detector_overrides_file, len(c.allow_keys), len(c.allow_accounts),
                 len(c.key_threshold_scale) + len(c.account_threshold_scale), c.min_events)
    processor = RequestProcessor(pipeline, source_topic=settings.requests_topic,
                                 max_future_ms=int(settings.max_future_s * 1000),
                                 allowed_lateness_ms=int(settings.allowed_lateness_s * 1000),
                                 dlq_max_bytes=settings.dlq_max_bytes)
    metrics = WorkerMetrics()
    if sink is None:
        from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink

        sink = ClickHouseSink(ClickHouseSettings())
        log.info("ClickHouse sink: %s", sink.settings.describe())
    app.distillguard_sink = sink
    app.distillguard_processor = processor
    # On-call feedback: a false positive suppresses its entity's alerts on every worker.
    feedback = app.distillguard_feedback = FeedbackFollower.for_worker(settings, sink)
    feedback.catch_up()

    def suppressed(alert: dict) -> bool:
        if feedback.suppresses(alert):
            metrics.alerts_suppressed.labels(entity_type=alert["entity_type"]).inc()
            return True
        return False

    requests = app.topic(settings.requests_topic, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions)
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw",
                    partitions=settings.partitions)
    alerts = app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions)
    links = app.topic(settings.links_topic, key_serializer="raw", value_serializer="raw", partitions=1)

    async def send_alert(key: bytes, alert: dict) -> None:
        await alerts.send(key=key, value=alert_bytes(alert))
        metrics.alerts.labels(severity=alert["severity"]).inc()

    def alerts_sent_before() -> list[bytes]:
        values, complete = read_topic_tail(settings.confluent_config(), f"{settings.app_id}-alerts-sent",
                                           settings.alerts_topic, settings.alert_dedup_tail)
        if not complete:
            log.warning("alerts topic tail not read to its end (%d read): an alert may be sent twice", len(values))
        return values

    # Alerts raised since the last flush: sent in the flush, once (see alert_outbox).
    outbox = AlertOutbox(send_alert, alerts_sent_before, max_entries=settings.alert_dedup_max,
                         on_duplicate=lambda alert: metrics.alerts_deduplicated.inc())
    if settings.link_values_partitioned:
        link_values = app.topic(settings.link_values_topic, key_serializer="raw", value_serializer="raw",
                                partitions=settings.partitions)
        # Link value -> its recent member keys (bounded: max_members, idle members dropped, idle
        # values expired by a timer), changelogged and partitioned by the value.
        link_members = app.Table("link-members", partitions=settings.partitions, key_type=bytes,
                                 value_type=bytes)
        linking = ClusterDetector()  # the linking parameters, shared with the cluster agent's detector
        # (key, link value) pairs already sent recently: the same filter replay applies in-process.
        refresh_links = LinkRefresh(linking.link_refresh_ms, linking.max_keys)
    # bytes keys and values: the changelog carries the detector's compact state as is.
    key_state = app.Table("key-state", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    # Events whose rows are buffered in the sink but not yet flushed: acked after the flush.
    unacked: list = []
    # Keys whose state changed since the last flush -> their partition. The table's store is
    # updated per event, its changelog once per key per flush: a hot key costs one changelog
    # record per flush instead of one per event. Safe because the events behind a dirty
    # state are acked only after its changelog record is queued, and Faust flushes the
    # producer before it commits offsets.
    dirty: dict[bytes, int] = {}
    last_seen: dict[bytes, tuple[float, int]] = {}
    # Link records waiting to go to the cluster agent, sent as one links-topic message per
    # flush tick (or per LINK_BATCH_MAX): a message per record cost 29 % of end-to-end time
    # (1,275 events/s with them, 1,784 without, on the dev stream). Sent at the start of each
    # flush, before the events behind them are acked; records re-sent after a crash are
    # learned once (their source offsets).
    link_batch: list[bytes] = []
    LINK_BATCH_MAX = 2000  # ~300 KB a message, under Kafka's 1 MiB default

    async def send_link_batch() -> None:
        if link_batch:
            payload = link_batch_bytes(link_batch)
            link_batch.clear()
            await links.send(key=b"links", value=payload, partition=0)

    async def send_dead_letter(dead: DeadLetter) -> None:
        await dlq.send(key=dead.key, value=dead.value, headers=dead.headers())
        stored = sink.stored_position(dead.source_topic, dead.partition)
        await add_to_sink(sink.add_dead_letter, dead.reason, dead.source_topic, dead.partition,
                          epochs.position(dead.partition, dead.offset, stored), dead.size)
        metrics.dead_letters.labels(reason=dead.reason.split(":", 1)[0][:40]).inc()

    async def send_sink_rejected() -> None:
        """Rows ClickHouse refused (in its dlq table already): their records to the dead-letter
        topic before their events are acked; a dlq row it refused too counts as not dead-lettered.
        Records are looked up among all unacked events: a flush also takes rows added while it ran."""
        rejected = sink.take_rejected()
        if not rejected:
            return
        for dead in processor.rejected_by_sink(rejected, [event.message for event in unacked]):
            try:
                await dlq.send(key=dead.key, value=dead.value, headers=dead.headers())
            except Exception:  # noqa: BLE001 - in the dlq table already: never hold the flush back
                log.exception("record %s:%s refused by ClickHouse could not be sent to the dead-letter topic",
                              dead.partition, dead.offset)
                metrics.dead_letter_errors.inc()
        for row in rejected:
            if row.table == "dlq":
                metrics.dead_letter_errors.inc()
            else:
                metrics.sink_rejected.labels(table=row.table).inc()

    async def add_to_sink(add, *args) -> None:
        while True:
            try:
                add(*args)
                return
            except SinkBackpressure as exc:
                # ClickHouse is behind: stop consuming (lag grows in Kafka, not in memory).
                metrics.backpressure.inc()
                await flush_sink()
                await asyncio.sleep(exc.retry_after)

    # Input partition epochs (streams/epochs.py): positions (epoch, offset) instead of offsets,
    # so a replaced log (broker back empty, topic recreated) is processed, not deduplicated.
    epochs = EpochTracker()

    async def input_position(message, decoded) -> int | None:
        """The record's position in its partition's current epoch (None: stored already, under
        the previous one); a new epoch begins here when the record differs from the one
        stored at its offset."""
        partition, offset = message.partition, message.offset
        stored = sink.stored_position(message.topic, partition)
        event_id = None if isinstance(decoded, DeadLetter) else decoded.event_id
        if epochs.replaced(partition):  # seen by verify_input_logs
            return await begin_epoch(message, stored)
        if epochs.needs_check(partition, offset, stored):
            found = await stored_record(message.topic, partition, epochs.position(partition, offset, stored))
            if epochs.decide(partition, offset, found, event_id) == NEW:
                return await begin_epoch(message, stored)
        if epochs.stored_before(partition, offset, event_id):
            return None
        return epochs.position(partition, offset, stored)

    async def stored_record(topic: str, partition: int, position: int):
        # ClickHouse unreachable: wait (back-pressure), never guess "duplicate" or "new log".
        while True:
            try:
                return await asyncio.to_thread(sink.stored_at, topic, partition, position)
            except Exception as exc:  # noqa: BLE001 - retried; /health reports the stalled commits
                log.warning("cannot read the stored record of %s:%s, will retry: %s", partition, position,
                            type(exc).__name__)
                await asyncio.sleep(sink.settings.retry_after_s)

    async def begin_epoch(message, stored: int) -> None:
        """Begin the partition's next epoch: its new log is read back from its start through
        this record (and on to what the group committed on it: Faust seeks there, and would
        not hand those records over again) and processed in order; this delivery is done."""
        processed_until = holes.expected(message.partition)
        new = epochs.begin_epoch(message.partition, message.offset, stored)
        log.warning("partition %s of %s: offset %s holds another record than the one stored (stored up to offset "
                    "%s): the log was replaced (broker restarted empty or topic recreated); epoch %s starts",
                    message.partition, message.topic, message.offset, new.stored_offset, new.epoch)
        metrics.epochs.labels(topic=message.topic, partition=str(message.partition)).inc()
        carry = epochs.carry_range(new, processed_until)
        if carry is not None:
            await flush_sink()  # rows of the new log read under the old epoch: in ClickHouse, to be found
            epochs.carry(message.partition, await asyncio.to_thread(
                sink.stored_event_ids, message.topic, message.partition, new.epoch - 1, *carry), carry[1])
        start, committed = new.refill_from, partition_start(message.tp)
        end = max(message.offset + 1, min(committed, message.offset + 1 + MAX_HOLE_FILL))
        holes.restart(message.partition, start)
        # The new log's records before this one went by as re-reads (undecided) or never
        # reached the agent; those after it up to the commit would not be handed over again.
        records, complete = await asyncio.to_thread(
            read_partition, settings.confluent_config(), f"{settings.app_id}-hole-fill", settings.requests_topic,
            message.partition, start, end)
        if not complete:
            log.error("partition %s: reading offsets %s..%s back timed out (%d read)", message.partition, start,
                      end - 1, len(records))
            metrics.hole_errors.inc()
        for record in records:
            await process(FilledEvent(record))

    @app.timer(settings.epoch_check_interval_s)
    async def verify_input_logs() -> None:
        """Compare each input partition's record at a reference offset with the row stored
        from it: a different one means the log was replaced under this worker (its fetch
        position still valid in the new log, so no offset went backwards). The partition is
        rewound; its next record begins the new epoch (streams/epochs.py)."""
        try:
            assigned = [tp for tp in app.consumer.assignment() if tp.topic == settings.requests_topic]
            references = {}
            for tp in assigned:
                reference = epochs.reference(tp.partition)
                if reference is None:
                    await take_reference(tp, 0)  # compared from the next tick on
                elif not epochs.replaced(tp.partition):
                    references[tp] = reference
            if not references:
                return
            found = await asyncio.to_thread(
                read_first_records, settings.confluent_config(), f"{settings.app_id}-epoch-check",
                settings.requests_topic, {tp.partition: offset for tp, (offset, _) in references.items()})
            for tp, (offset, event_id) in references.items():
                at, value = found.get(tp.partition, (None, None))
                if at is None:
                    continue  # an empty log: its first record shows offsets going back
                if at > offset:
                    await take_reference(tp, at)  # removed by retention: the first one left
                    continue
                # at < offset: the log now ends before the reference (read from its start)
                now = parse_event(value) if value is not None and at == offset else None
                # (the reference is dropped when an epoch begins: then offsets went back meanwhile)
                if getattr(now, "event_id", None) != event_id and epochs.reference(tp.partition) == (offset, event_id):
                    await rewind_replaced(tp, offset)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a check must not stop the worker; retried on the next tick
            log.warning("input log check failed", exc_info=True)

    async def take_reference(tp, from_offset: int) -> None:
        # The lowest row stored of the epoch: any new log that has records at all has one
        # there (a reference near the end may lie beyond a shorter new log, where tansu
        # answers a fetch with nothing rather than an out-of-range error).
        stored = sink.stored_position(tp.topic, tp.partition)
        if stored >= 0:
            first = await asyncio.to_thread(sink.first_row, tp.topic, tp.partition,
                                            epochs.epoch(tp.partition, stored), from_offset)
            epochs.set_reference(tp.partition, *(first or (from_offset, None)))

    async def rewind_replaced(tp, offset: int) -> None:
        log.warning("partition %s of %s: the broker holds another record at offset %s than the one stored: the "
                    "log was replaced (broker restarted empty or topic recreated); reading it from its start",
                    tp.partition, tp.topic, offset)
        epochs.mark_replaced(tp.partition)
        consumer = app.consumer
        thread = consumer._thread  # noqa: SLF001 - seek in the consumer's thread (see rewind_uncommitted_after_seeks)
        await thread.call_thread(thread.seek, tp, 0)
        consumer._read_offset[tp] = None  # noqa: SLF001 - else Faust drops the records below it

    async def handle(event) -> None:
        message = event.message
        decoded = processor.decode(message.value, message.key, message.partition, message.offset)
        position = await input_position(message, decoded)
        if position is None:  # stored already, under the previous epoch
            processor.counters.duplicates += 1
            metrics.duplicates.inc()
            return
        if isinstance(decoded, DeadLetter):
            await send_dead_letter(decoded)
            return
        for field_path in decoded.clamped:
            metrics.clamped.labels(field=field_path).inc()
        state_key = decoded.api_key_id.encode("utf-8", "surrogatepass")
        state = key_state.get(state_key)
        if processor.is_late(state, decoded):  # stored, not learned (DG_ALLOWED_LATENESS_S)
            result = processor.step_late(state, decoded, position)
            if result.row is not None:
                await add_to_sink(sink.add, result.row, message.partition, position, message.topic)
                metrics.events.inc()
                metrics.late.inc()
            else:
                metrics.duplicates.inc()
            return
        result = processor.step(state, decoded, position)
        if result.duplicate:
            metrics.duplicates.inc()
            return
        # Everything the event produces (row, alert, link record) is buffered before its state
        # moves on, with no await after that: a state that reaches the changelog (after a
        # successful flush) never covers an event whose outputs are not written.
        await add_to_sink(sink.add, result.row, message.partition, position, message.topic)
        if result.alert is not None and not suppressed(result.alert):
            await add_to_sink(sink.add_alert, result.alert)
            outbox.add(state_key, result.alert)
        rec = link_record(decoded, result, partition=message.partition, offset=position)
        if rec is not None:
            # The key's behaviour to the cluster agent; its link values to their partitions.
            link_batch.append(rec.to_bytes())
            if len(link_batch) >= LINK_BATCH_MAX:
                await send_link_batch()
            if settings.link_values_partitioned:
                for kind, link_value in linking.values_to_link(rec):
                    if refresh_links.due(rec.api_key_id, (kind, link_value), rec.ts_ms):
                        await link_values.send(key=link_value_key(kind, link_value),
                                               value=json.dumps([kind, rec.api_key_id, rec.ts_ms]).encode())
        key_state.data[state_key] = result.state
        dirty[state_key] = message.partition
        last_seen[state_key] = (time.monotonic(), message.partition)
        metrics.events.inc()

    holes = HoleGuard()
    MAX_HOLE_FILL = 50_000  # records read back at most for one hole

    def partition_start(tp) -> int:
        """Where the group resumes an input partition: its committed offset, else 0.

        From Faust's own record of the commit (read when the partition was assigned), with no
        broker call on the agent's path. Nothing committed: the worker reads from the earliest
        record, and the reader skips what retention removed.
        """
        committed = faust_commit(tp)
        return committed if committed is not None else 0

    def faust_commit(tp) -> int | None:
        """The group's commit on ``tp`` as Faust last learned it (None: not known to Faust)."""
        committed = app.consumer._committed_offset.get(tp)  # noqa: SLF001 - not exposed otherwise
        return None if committed is None else max(committed, 0)

    async def first_offset_of(tp) -> int:
        """Where the group resumes a partition whose first record has just arrived.

        Faust learns the commits in its seek after table recovery, yet a partition can hand
        over records before that seek (seen on restarts with static membership): taken as "no
        commit", the whole partition before its first record was read back as a hole (up to
        20k records a restart, so a crash-looping worker made no progress). Not known to
        Faust: asked of the broker.
        """
        committed = faust_commit(tp)
        if committed is not None:
            return committed
        try:
            return await asyncio.to_thread(read_group_commit, settings.confluent_config(), settings.app_id,
                                           tp.topic, tp.partition)
        except Exception as exc:  # noqa: BLE001 - the broker could not say: read from the start (safe)
            log.warning("partition %s: the group's commit could not be read (%s): checking it from offset 0",
                        tp.partition, type(exc).__name__)
            return 0

    class FilledEvent:
        """A record read back from the broker to fill a hole, acked like a stream event."""

        __slots__ = ("message",)

        def __init__(self, message) -> None:
            self.message = message

        def ack(self) -> bool:
            return app.consumer.ack(self.message)

    async def fill_hole(message) -> None:
        """Process the records missing before ``message`` (read from the broker), in order."""
        start = holes.expected(message.partition)
        if message.offset - start > MAX_HOLE_FILL:
            # Most likely the partition was away (another worker moved it on): what the group
            # has committed is done; read only what lies beyond it.
            start = max(start, partition_start(message.tp))
            if start >= message.offset:
                return
        partition, end = message.partition, message.offset
        records, complete = await asyncio.to_thread(
            read_partition, settings.confluent_config(), f"{settings.app_id}-hole-fill", settings.requests_topic,
            partition, start, end)
        if not complete:
            log.error("partition %s: reading offsets %s..%s back timed out (%d read)", partition, start, end - 1,
                      len(records))
            metrics.hole_errors.inc()
        if records:
            log.warning("records %s..%s of partition %s never reached the worker: read %d back from the broker",
                        start, end - 1, partition, len(records))
            metrics.holes.inc(len(records))
        for record in records:
            await process(FilledEvent(record))

    skipping = {"left": 0}
    faults = FaultInjection()

    def injected_skip() -> bool:
        """The fault test's stand-in for records lost on their way to the agent."""
        fault = faults.consumer_skip_file
        if fault is not None and not skipping["left"] and fault.exists():
            fault.unlink()
            skipping["left"] = 3
        if skipping["left"]:
            skipping["left"] -= 1
            return True
        return False

    async def process(event) -> None:
        try:
            await handle(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a worker never dies on a record
            log.exception("record %s:%s failed", event.message.partition, event.message.offset)
            try:
                await send_dead_letter(processor.failed(event.message, exc))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - not even dead-letterable: say where it is, carry on
                log.exception("record %s:%s could not be dead-lettered", event.message.partition,
                              event.message.offset)
                metrics.dead_letter_errors.inc()
        unacked.append(event)
        holes.processed(event.message.partition, event.message.offset)
        if (sink.should_flush() or len(outbox)) and not flush_lock.locked():
            # Flush beside the stream, not in it: the agent keeps scoring while ClickHouse
            # writes (back-pressure, not this await, is what stops it when CH is behind).
            # An alert waiting flushes at once: alerts leave in the flush.
            app.loop.create_task(flush_sink())

    @app.agent(requests, name="process-requests")
    async def process_requests(stream):
        async for event in stream.noack().events():
            if injected_skip():
                continue
            partition = event.message.partition
            try:
                if not holes.known(partition):
                    holes.start(partition, await first_offset_of(event.message.tp))
                if not holes.admit(partition, event.message.offset):
                    await fill_hole(event.message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the broker could not be read: logged and counted
                log.exception("hole before %s:%s not filled", partition, event.message.offset)
                metrics.hole_errors.inc()
            await process(event)

    if settings.link_values_partitioned:  # (else: linking in the cluster agent, below)
        newest_link_ts: dict[str, int] = {"ts": 0}
        link_partitions: dict[bytes, int] = {}  # link value -> its partition (bounded with the table)

        # As for key-state: the store is set per record, the changelog written once per value per
        # tick (a changelog record per set filled Faust's producer buffer and stalled the worker),
        # and the records are acked only after their values' changelog records are queued.
        link_dirty: dict[bytes, int] = {}
        link_unacked: list = []

        @app.agent(link_values, name="link-values")
        async def judge_link_values(stream):
            async for event in stream.noack().events():
                link_unacked.append(event)
                try:
                    kind, key, ts = json.loads(event.message.value)
                    value_key = event.message.key
                    link = LinkMembers.from_bytes(link_members.get(value_key)) or LinkMembers(first_ts=ts)
                    others = link_step(link, kind, key, ts, window_ms=linking.window_ms,
                                       min_coordinated=linking.min_coordinated, max_members=linking.max_members)
                    link_members.data[value_key] = link.to_bytes()
                    link_partitions[value_key] = link_dirty[value_key] = event.message.partition
                    newest_link_ts["ts"] = max(newest_link_ts["ts"], ts)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a bad link value must not stop linking
                    log.exception("link value %s:%s failed", event.message.partition, event.message.offset)
                    metrics.cluster_errors.inc()
                    continue
                if others:
                    await links.send(key=b"links", partition=0, value=json.dumps(
                        {"join": kind, "key": key, "others": others, "ts": ts}, separators=(",", ":")).encode())

        @app.timer(0.5)
        async def changelog_link_members() -> None:
            if not link_unacked:
                return
            pending = list(link_unacked)
            changed = [(key, partition, link_members.data.get(key)) for key, partition in link_dirty.items()]
            link_dirty.clear()
            await send_changelog(link_members, changed)
            for event in pending:
                event.ack()
            del link_unacked[:len(pending)]

        @app.timer(interval=settings.link_expiry_interval_s)
        async def expire_link_values() -> None:
            # Values idle for a few linking windows are forgotten (tombstoned in the changelog): the
            # table is bounded by the traffic of the last hours, not by all values ever seen.
            # (A timer is outside stream iteration, where Faust cannot tell a key's partition: the
            # store is edited directly and the tombstone sent to the partition the value came from.)
            horizon = newest_link_ts["ts"] - settings.link_idle_windows * linking.window_ms
            for value_key, data in list(link_members.data.items()):
                try:
                    expired = LinkMembers.from_bytes(data).last_ts < horizon
                except Exception:  # noqa: BLE001 - an unreadable entry is dropped, not kept forever
                    expired = True
                if expired:
                    link_members.data.pop(value_key, None)
                    metrics.link_values_expired.inc()
                    link_dirty.pop(value_key, None)
                    partition = link_partitions.pop(value_key, None)
                    if partition is not None:  # else only recovered, never touched since: local only
                        link_members.send_changelog(partition, value_key, None)

    def observe(detector: ClusterDetector, value: bytes) -> list[dict]:
        """A links-topic message: a batch of key behaviour records (a JSON list of them), one
        record (as sent before batching), or a join found by the link-values stage."""
        if value[:1] == b"{":
            join = json.loads(value)
            return detector.observe_join(join["join"], join["key"], join["others"], join["ts"])
        raised = []
        for rec in link_records_in(value):
            try:
                raised.extend(detector.observe_link(rec, link=not settings.link_values_partitioned))
            except Exception:  # noqa: BLE001 - one bad record must not cost the rest of its batch
                log.exception("link record of key %r failed", rec.api_key_id)
                metrics.cluster_errors.inc()
        return raised

    # The cluster detector's state is a function of the links topic: a worker that takes
    # over its partition rebuilds it from the records before the first one it is handed
    # (those were processed, and alerted on, before), so no changelog is needed and alert
    # ids (the hour its campaign began, see ClusterDetector._incident_id) stay the same.
    clusters = {"detector": None, "applied": -1}

    def rebuild_clusters(upto: int) -> ClusterDetector:
        from confluent_kafka import Consumer, TopicPartition

        detector = ClusterDetector()
        if upto <= 0:
            return detector
        consumer = Consumer({**settings.confluent_config(), "group.id": f"{settings.app_id}-cluster-rebuild",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        consumer.assign([TopicPartition(settings.links_topic, 0, 0)])
        idle_polls = 0
        try:
            while idle_polls < 20:
                msg = consumer.poll(0.5)
                if msg is None:
                    idle_polls += 1
                    continue
                if msg.error():
                    continue
                if msg.offset() >= upto:
                    break
                observe(detector, msg.value())
                if msg.offset() == upto - 1:
                    break
        finally:
            consumer.close()
        return detector

    @app.agent(links, name="detect-clusters")
    async def detect_clusters(stream):
        # Acked after the flush, as input events are: the alerts a record raises are stored and
        # sent first (a kill before that re-reads the record; the outbox drops a re-raised
        # alert that had left).
        async for event in stream.noack().events():
            unacked.append(event)
            offset = event.message.offset
            try:
                if clusters["detector"] is None:
                    clusters["detector"] = await asyncio.to_thread(rebuild_clusters, offset)
                    clusters["applied"] = offset - 1
                if offset <= clusters["applied"]:
                    continue
                raised = observe(clusters["detector"], event.message.value)
                clusters["applied"] = offset
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bad link record must not stop cluster detection
                log.exception("link record %s failed", offset)
                metrics.cluster_errors.inc()
                continue
            for alert in raised:
                if suppressed(alert):
                    continue
                await add_to_sink(sink.add_alert, alert)
                outbox.add(alert["entity_id"].encode(), alert)

    # An agent whose actor died on an exception that escaped it (a bug: records never do) leaves
    # an unacked event that blocks every later commit: /health then answers 503 so that the
    # orchestrator restarts the worker (it resumes from the committed offsets).
    crashed: dict[str, str] = {}

    async def on_agent_error(agent, exc: BaseException) -> None:
        crashed[agent.name] = type(exc).__name__  # no message: it could quote a record
        log.error("agent %s crashed (%s): /health now reports unhealthy", agent.name, type(exc).__name__)
        await app._on_agent_error(agent, exc)

    agents = [process_requests, detect_clusters] + ([judge_link_values] if settings.link_values_partitioned else [])
    for agent in agents:
        agent._on_error = on_agent_error  # Faust's per-agent error hook (app.agent sets the app's)

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        if any(tp.topic == settings.links_topic for tp in revoked):
            clusters["detector"], clusters["applied"] = None, -1

    flush_lock = asyncio.Lock()

    async def flush_sink() -> None:
        async with flush_lock:
            await send_link_batch()
            pending = list(unacked)
            outgoing = outbox.snapshot()  # raised by the pending events: their rows are buffered
            # States as of now: their events' rows are all buffered (rows go in before states
            # move), so they are in this flush. Changelogged only once ClickHouse has the rows:
            # a crash before that restores an older state and the events are re-applied (their
            # rows dropped by the sink watermark), never skipped as already seen.
            changed = [(state_key, partition, key_state.data.get(state_key))
                       for state_key, partition in dirty.items()]
            dirty.clear()
            started = time.perf_counter()
            try:
                await asyncio.to_thread(sink.flush)
            except Exception as exc:  # noqa: BLE001 - keep the events unacked, retry next tick
                metrics.sink_errors.inc()
                log.warning("ClickHouse flush failed, will retry: %s", exc)
                for state_key, partition, _ in changed:
                    dirty.setdefault(state_key, partition)
                return
            metrics.sink_flush_seconds.observe(time.perf_counter() - started)
            await send_sink_rejected()
            try:
                await outbox.send_pending(outgoing)
            except Exception as exc:  # noqa: BLE001 - the broker: keep the events unacked, retry next tick
                log.warning("sending alerts failed, will retry: %s: %s", type(exc).__name__, exc)
                for state_key, partition, _ in changed:
                    dirty.setdefault(state_key, partition)
                return
            await send_changelog(key_state, changed)
            for event in pending:
                event.ack()
            del unacked[:len(pending)]

    async def send_changelog(table, changed: list[tuple[bytes, int, bytes | None]]) -> None:
        """Changelog records for entries set in the table's store directly (key, partition, value)."""
        last: dict[int, tuple[bytes, bytes]] = {}
        for key, partition, value in changed:
            if value is not None:
                table.send_changelog(partition, key, value)
                last[partition] = (key, value)
        if last:
            # A broker that reports a short high watermark (tansu: the first offset of the
            # last batch + 1) makes a restarted worker stop its table recovery early. Seal
            # each partition with a record in a batch of its own (its last key again: a
            # no-op for the table), so the reported end is the true end.
            await app.producer.flush()
            for partition, (key, value) in last.items():
                table.send_changelog(partition, key, value)
            await app.producer.flush()

    @app.timer(0.5)
    async def flush_on_age() -> None:
        if unacked or sink.should_flush():
            await flush_sink()

    if hasattr(sink, "check_rollups"):
        @app.timer(sink.settings.rollup_check_interval_s)
        async def check_rollups() -> None:
            # Keeps what the rollup check on the next start reads (after a kill) to one interval.
            await asyncio.to_thread(sink.check_rollups)

    @app.timer(60.0)
    async def evict_idle_keys() -> None:
        # Bound the table: keys not seen for key_idle_ttl are dropped (a tombstone on the changelog).
        now = time.monotonic()
        horizon = now - settings.key_idle_ttl_s
        for state_key in [k for k, (seen, _) in last_seen.items() if seen < horizon]:
            _, partition = last_seen.pop(state_key)
            if key_state.data.pop(state_key, None) is not None:
                key_state.send_changelog(partition, state_key, None)
            dirty.pop(state_key, None)
        metrics.keys.set(len(key_state.data))

    progress: dict[int, tuple[int, float]] = {}  # input partition -> (next offset, since when)
    stalled: set[int] = set()
    recovery_watch = RecoveryWatch(settings.recovery_stall_s)
    commit_watch = CommitWatch(settings.stall_after_s)
    health_judge = HealthJudge(stall_after_s=settings.stall_after_s,
                               sink_failing_unhealthy_s=settings.sink_failing_unhealthy_s)

    def sink_failing_since() -> float | None:
        return getattr(sink, "_failing_since", None)  # (sink clock: time.monotonic, as here)

    def watch_recovery(now: float) -> None:
        """Restart a table recovery that reads nothing for DG_RECOVERY_STALL_S; report it if
        that does not help (/health answers 503: the orchestrator restarts the worker)."""
        recovery = app.tables.recovery
        action = recovery_watch.observe(bool(recovery.in_recovery), dict(recovery.active_offsets), now)
        if action == RESTART:
            log.warning("table recovery has read nothing for %.0fs (behind: %s): restarting it",
                        settings.recovery_stall_s, recovery_state().get("behind"))
            metrics.recovery_restarts.inc()
            recovery.signal_recovery_start.set()
        elif action == STALLED:
            log.error("table recovery still reads nothing after a restart (behind: %s): reporting unhealthy",
                      recovery_state().get("behind"))
        metrics.recovery_stalled.set(int(recovery_watch.stalled))

    @app.timer(settings.commit_interval_s)
    async def commit_on_own_clock() -> None:
        """Commit acked offsets every DG_COMMIT_INTERVAL_S, beside Faust's own commit task.

        Faust's task dies on the first commit that raises (seen: IllegalGenerationError when
        the broker came back from a restart) and is not restarted: offsets then stayed where
        they were for good (1 run in 4 of the broker-restart fault test), the group's lag
        grew forever and Faust's list of acked offsets with it. ``Consumer.commit`` lets one
        commit run at a time, so the two never overlap.
        """
        consumer = app.consumer
        pending: dict[int, int] = {}  # per input partition, the lowest offset still waiting for a flush
        for event in unacked:
            partition, offset = event.message.partition, event.message.offset
            if offset < pending.get(partition, offset + 1):
                pending[partition] = offset
        for tp, acked in list(consumer._acked.items()):  # noqa: SLF001 - not exposed otherwise
            # An offset acked twice (a record acked before a rebalance and again when Faust
            # re-delivers it) breaks Faust's run of consecutive offsets, and each commit
            # then moves one offset on: keep each offset once.
            if len(acked) != len(set(acked)):
                acked[:] = sorted(set(acked))
            if tp.topic == settings.requests_topic:
                # Records processed and stored whose acks Faust lost in a rebalance (see
                # processed_head_gap): passed to its commit as a gap, or the commit waits for ever.
                gap = processed_head_gap(consumer._committed_offset.get(tp), acked,  # noqa: SLF001
                                         holes.expected(tp.partition), pending.get(tp.partition))
                if gap is not None:
                    consumer._gap[tp].addi(*gap)  # noqa: SLF001 - Faust's own gap list (end exclusive)
        try:
            await consumer.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried on the next tick
            metrics.commit_errors.inc()
            log.warning("offset commit failed, will retry: %s: %s", type(exc).__name__, exc)

    @app.timer(5.0)
    async def update_gauges() -> None:
        now = time.monotonic()
        watch_recovery(now)
        metrics.keys.set(len(key_state.data))
        metrics.state_bytes.set(sum(map(len, key_state.data.values())))
        metrics.sink_buffered.set(sink.buffered)
        failing_since = sink_failing_since()
        metrics.sink_failing_seconds.set(0 if failing_since is None else now - failing_since)
        metrics.epoch_undecided_seconds.set(max(epochs.checking_for(now).values(), default=0))
        try:
            assigned = [tp for tp in app.consumer.assignment() if tp.topic == settings.requests_topic]
            highs = {tp: app.consumer.highwater(tp) for tp in assigned}
        except Exception:  # noqa: BLE001 - a gauge must not stop the worker (e.g. mid-rebalance)
            return
        metrics.lag.clear()  # only the partitions assigned now
        metrics.stalled.clear()
        metrics.commit_stalled.clear()
        commit_watch.keep_only({tp.partition for tp in highs})
        for tp, high in highs.items():
            # (a partition no record of which has arrived yet starts at the group's commit)
            expected = holes.expected(tp.partition)
            next_offset = expected if expected is not None else partition_start(tp)
            moved = progress.get(tp.partition)
            if moved is None or moved[0] != next_offset:
                moved = progress[tp.partition] = (next_offset, now)
            if high is None:
                continue
            labels = {"topic": tp.topic, "partition": str(tp.partition)}
            metrics.lag.labels(**labels).set(max(0, high - next_offset))
            is_stalled = high > next_offset and now - moved[1] >= settings.stall_after_s
            metrics.stalled.labels(**labels).set(int(is_stalled))
            (stalled.add if is_stalled else stalled.discard)(tp.partition)
            committed = app.consumer._committed_offset.get(tp)  # noqa: SLF001 - not exposed otherwise
            metrics.commit_stalled.labels(**labels).set(int(commit_watch.observe(tp.partition, committed, high, now)))

    if getattr(sink, "client", None) is not None:  # the read-only dashboard, from the chDB owner
        from distillguard.dashboard import mount_on_faust

        mount_on_faust(app, sink.read_client, sink.db)  # web threads: the read client

    @app.page("/health")
    async def health(web, request):
        now = time.monotonic()
        verdict = health_judge.verdict(now=now, crashed=crashed, recovery_stalled=recovery_watch.stalled,
                                       sink_failing_since=sink_failing_since(), commit_stalled=commit_watch.stalled,
                                       input_stalled=stalled, epochs_undecided=epochs.checking_for(now))
        return web.json({"status": verdict.status, **verdict.details, "counters": vars_of(processor.counters),
                         "partitions": input_partitions(), "recovery": recovery_state(),
                         "epochs": epochs_detected()}, status=200 if verdict.healthy else 503)

    def epochs_detected() -> dict:
        """Per input partition: its last new log (epoch, first offset, what was stored of the old one)."""
        return {str(p): {"epoch": e.epoch, "from_offset": e.offset, "previous_stored": e.stored_offset}
                for p, e in epochs.detected.items()}

    def recovery_state() -> dict:
        """Faust's table recovery: in progress or not, and each changelog partition it still
        reads (the offset it has applied, the end it waits for)."""
        try:
            recovery = app.tables.recovery
            behind = {}
            for tp, high in list(recovery.active_highwaters.items()):
                offset = recovery.active_offsets.get(tp)
                if high is not None and (-1 if offset is None else offset) < high:
                    behind[f"{tp.topic}:{tp.partition}"] = [offset, high]
            return {"in_progress": bool(recovery.in_recovery), "behind": behind}
        except Exception as exc:  # noqa: BLE001 - mid-rebalance: say so rather than fail /health
            return {"error": type(exc).__name__}

    def input_partitions() -> dict:
        """Per assigned input partition: where processing is, what the broker has, whether
        Faust has it paused (recovery, back-pressure). Where on-call looks when one lags."""
        consumer = app.consumer
        try:
            assigned = sorted(tp for tp in consumer.assignment() if tp.topic == settings.requests_topic)
            paused = set(consumer._paused_partitions)  # noqa: SLF001 - not exposed otherwise
            return {str(tp.partition): {"next_offset": holes.expected(tp.partition),
                                        "committed": consumer._committed_offset.get(tp),  # noqa: SLF001
                                        "high_watermark": consumer.highwater(tp),
                                        "paused": tp in paused, "stalled": tp.partition in stalled,
                                        "commit_stalled": tp.partition in commit_watch.stalled}
                    for tp in assigned}
        except Exception as exc:  # noqa: BLE001 - mid-rebalance: say so rather than fail /health
            return {"error": type(exc).__name__}

    serve_metrics(app, metrics)

    @app.page("/summary")
    async def summary(web, request):
        limit = int(request.query.get("limit", "10"))
        rows = await asyncio.to_thread(sink.summary, limit)
        return web.json({"top_keys": rows})

    @app.page("/alerts")
    async def alert_rows(web, request):
        limit = int(request.query.get("limit", "100"))
        rows = await asyncio.to_thread(sink.alert_rows, limit)
        return web.json({"alerts": rows})

    @app.page("/query/tables")
    async def table_counts(web, request):
        return web.json(await asyncio.to_thread(sink.table_counts))

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs) -> None:
        rewind_uncommitted_after_seeks(app.consumer)  # before recovery's seek, which follows
        outbox.mark_stale()  # the previous owner of these partitions may have sent their alerts
        # Another worker may have stored rows of these partitions since we last looked.
        await asyncio.to_thread(sink.refresh_watermarks)

    source_topics = {settings.requests_topic, settings.links_topic} | (
        {settings.link_values_topic} if settings.link_values_partitioned else set())

    def rewind_uncommitted_after_seeks(consumer) -> None:
        """After Faust's first seek to the committed offsets in each consumer generation,
        rewind the assigned source partitions that have no commit to their first record.

        When a rebalance suspends Faust's flow, the records it had fetched are dropped, yet
        the fetch position stays past them; the seek to the committed offset that follows
        brings them back, but aiokafka seeks only partitions with a commit above 0. A
        partition nothing was committed on stayed past its dropped records: in the SIGKILL
        fault test the restarted worker never saw 94 of one partition's 95 records. Rewound,
        such a partition is read again from its start (records already applied are
        recognised by the key's state, rows by the sink's watermark).

        A commit Faust remembers but the broker no longer has (it came back empty, the topic
        was recreated) counts as none: forgotten, so that commits of the new log are not held
        back by it, and the partition is read from its new start (a new epoch: streams/epochs.py).
        """
        if getattr(consumer, "_dg_rewinds_uncommitted", False):
            return
        rewound = {"generation": None}
        seek_to_committed = consumer.perform_seek
        broker_commits: dict = {}  # what the broker answered at the seek being made (None: no answer)
        ask_broker = consumer.seek_to_committed

        async def seek_to_broker_commits():
            offsets = await ask_broker()
            broker_commits["answer"] = dict(offsets)
            return offsets

        async def perform_seek() -> None:
            generation = app.consumer_generation_id
            broker_commits["answer"] = None
            await seek_to_committed()
            committed = consumer._committed_offset  # noqa: SLF001 - set by the seek just made
            answer = broker_commits["answer"]
            source = [tp for tp in consumer.assignment() if tp.topic in source_topics]
            # Forgotten once, so rewound once; checked on every seek: a broker back empty
            # starts its generations again, so the generation can be the one already seen.
            gone = [tp for tp in source
                    if committed.get(tp) is not None and answer is not None and not answer.get(tp)]
            for tp in gone:
                committed.pop(tp, None)
            if gone:
                log.warning("the broker has lost the commits of %s (back empty? topic recreated?): reading them "
                            "from their start", ", ".join(f"{tp.topic}:{tp.partition}" for tp in gone))
            if rewound["generation"] == generation:
                # Once per generation: Faust also seeks from its fetch loop while the flow is
                # stopped (recovery); rewinding on every pass there would re-read those
                # partitions again and again.
                partitions = gone
            else:
                rewound["generation"] = generation
                partitions = [tp for tp in source if committed.get(tp) is None]
            # a log found replaced (verify_input_logs) is read from its start, whatever is committed on it
            partitions += [tp for tp in source if tp.topic == settings.requests_topic and epochs.replaced(tp.partition)
                           and tp not in partitions]
            # In the consumer's own thread, as Faust's seek is: aiokafka's fetcher is not
            # thread-safe (Faust's Consumer.seek, from this loop, crashed it with a KeyError).
            thread = consumer._thread  # noqa: SLF001 - the aiokafka consumer thread
            try:
                for tp in partitions:
                    # below the log start, the reset policy applies: earliest
                    await thread.call_thread(thread.seek, tp, 0)
                    consumer._read_offset[tp] = None  # noqa: SLF001 - else Faust drops what it re-reads
            except Exception:  # noqa: BLE001 - rebalancing again: the next seek rewinds
                log.warning("could not rewind %d uncommitted partitions", len(partitions), exc_info=True)

        consumer.perform_seek = perform_seek
        consumer.seek_to_committed = seek_to_broker_commits
        consumer._dg_rewinds_uncommitted = True

    @app.page("/query/state")
    async def state_of(web, request):
        # Lets tests and operators inspect one key's recovered state (size and events seen).
        key = request.query.get("key", "").encode()
        value = key_state.get(key)
        return web.json({"key": key.decode(), "bytes": len(value) if value else 0,
                         "info": state_without_verdict(pipeline.describe_state(value)) if value else None})

    @app.task
    async def follow_feedback() -> None:
        feedback.start()

    @app.task
    async def on_start() -> None:
        log.info("worker started: %s", json.dumps({"bootstrap": settings.kafka_bootstrap,
                                                   "topic": settings.requests_topic}))

    return app


def vars_of(counters) -> dict:
    return {name: getattr(counters, name) for name in counters.__slots__}
