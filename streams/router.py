"""The alert router: its own Faust app (own app id, consumer group, changelog) that hands incidents to Alertmanager.

``distill.alerts`` -> allowlist -> incident lifecycle (one incident per entity, escalation,
auto-resolve; changelogged table) -> Alertmanager's v2 API on *every* replica in
``DG_ALERTMANAGER_URLS``, and ``distill.actions`` (recommended enforcement) once per
incident version. ``distill.feedback``: ack / resolve / false positive change incidents
(a false positive also suppresses the entity), snooze / unsnooze are Alertmanager silences.

Who is paged, and how, is Alertmanager's (receivers, grouping, inhibition, time intervals:
``deploy/alertmanager/alertmanager.yml``). Alertmanager holds alerts in memory only, so each
active incident is re-posted every tick with an ``endsAt`` a few ticks ahead: a replica that
restarts has it again within one tick, and if the router dies the alerts end on their own.
A resolve is posted (``endsAt`` = now) until every replica took it. The label set is the
incident's identity (same ``dedup_key`` across router restarts), so re-posting never pages
twice; a router killed mid-post re-reads the uncommitted alerts and posts the same labels.
A replica that becomes unreachable is reported once on ``distill.alerts.failed`` (and again
when it is back), not once per incident and tick.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Literal

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from distillguard.contracts.alert import Alert, BadAlert, iso_ms
from distillguard.contracts.feedback import BadFeedback, Feedback
from distillguard.sinks.routing import actions as policy_actions
from distillguard.sinks.routing import alertmanager as am
from distillguard.sinks.routing import lifecycle
from distillguard.sinks.routing.delivery import AlertmanagerClient
from distillguard.sinks.routing.routes import RoutesConfig

from .checkpoint import ChangelogSeals
from .holes import read_partition
from .settings import KafkaSettings

log = logging.getLogger(__name__)


class RouterSettings(KafkaSettings):
    """The router worker's settings (env prefix ``DG_ROUTER_``); Kafka from :class:`KafkaSettings`
    (``DG_KAFKA_*``, shared with the workers), its bootstrap also as ``DG_ROUTER_KAFKA_BOOTSTRAP``."""

    model_config = SettingsConfigDict(env_prefix="DG_ROUTER_", frozen=True, extra="ignore", populate_by_name=True)

    # The router's own bootstrap servers when they differ from the workers' (DG_KAFKA_BOOTSTRAP).
    kafka_bootstrap: str = Field("127.0.0.1:9092", validation_alias=AliasChoices(
        "DG_ROUTER_KAFKA_BOOTSTRAP", "DG_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"))
    app_id: str = "distillguard-router"
    routes_file: Path = Path("routes.yaml")
    alerts_topic: str = Field("distill.alerts", validation_alias=AliasChoices(
        "DG_ROUTER_ALERTS_TOPIC", "DG_ALERTS_TOPIC"))
    feedback_topic: str = Field("distill.feedback", validation_alias=AliasChoices(
        "DG_ROUTER_FEEDBACK_TOPIC", "DG_FEEDBACK_TOPIC"))
    actions_topic: str = "distill.actions"
    # Keys per distill.actions message: an incident's keys beyond it go in further pages.
    action_page_keys: int = Field(500, ge=1, le=10_000)
    failed_topic: str = "distill.alerts.failed"
    # Partitions of the incidents table: must equal those of the alerts topic (read from
    # the broker when the topic exists, this value when the router creates it).
    # Where a new router group starts on the alerts topic: "earliest" pages everything the
    # topic still holds (right for a fresh pipeline), "latest" only what comes after (for a
    # first deployment against a topic with history).
    start_from: Literal["earliest", "latest"] = "earliest"
    partitions: int = Field(8, ge=1, le=1024, validation_alias=AliasChoices("DG_ROUTER_PARTITIONS",
                                                                            "DG_PARTITIONS"))
    data_dir: Path = Field(Path("var/router"), validation_alias=AliasChoices("DG_ROUTER_DATA_DIR"))
    # As the worker's DG_WEB_BIND / DG_WEB_TOKEN (streams/web.py): loopback unless configured,
    # a token required beyond it. The token may be shared with the workers (DG_WEB_TOKEN).
    web_bind: str = Field("127.0.0.1", validation_alias=AliasChoices("DG_ROUTER_WEB_BIND", "DG_ROUTER_WEB_HOST"))
    web_token: SecretStr | None = Field(None, validation_alias=AliasChoices("DG_ROUTER_WEB_TOKEN", "DG_WEB_TOKEN"))
    web_port: int = Field(6067, ge=0, le=65535)
    session_timeout_s: float = Field(8.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    # How long a fetch may wait at the broker for records. Faust fixes it at 1,500 ms; the
    # embedded tansu broker holds every fetch that long, which made it the floor of event ->
    # alert latency (p50 1.5 s at 600 events/s; 0.24 s with 100 ms).
    consumer_fetch_max_wait_ms: int = Field(100, ge=1, le=1500)
    log_level: str = "warn"
    # Every Alertmanager replica, comma-separated: each gets every post (replicas do not
    # share alerts posted to another; behind one load-balanced URL a resolve could reach a
    # replica that never saw the trigger).
    alertmanager_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:9093"],
        validation_alias=AliasChoices("DG_ALERTMANAGER_URLS", "DG_ROUTER_ALERTMANAGER_URLS"))
    # An active incident is posted with endsAt this many ticks ahead and re-posted every
    # tick: a few missed posts are tolerated, a dead router's alerts end within this time.
    alertmanager_ends_after_ticks: int = Field(4, ge=2, le=100, validation_alias=AliasChoices(
        "DG_ALERTMANAGER_ENDS_AFTER_TICKS", "DG_ROUTER_ALERTMANAGER_ENDS_AFTER_TICKS"))
    alertmanager_timeout_s: float = Field(5.0, gt=0, validation_alias=AliasChoices(
        "DG_ALERTMANAGER_TIMEOUT_S", "DG_ROUTER_ALERTMANAGER_TIMEOUT_S"))

    @field_validator("alertmanager_urls", mode="before")
    @classmethod
    def _split_urls(cls, value):
        if isinstance(value, str):
            value = [url.strip() for url in value.split(",")]
        urls = [url for url in value if url]
        if not urls:
            raise ValueError("DG_ALERTMANAGER_URLS needs at least one URL")
        bad = [i for i, url in enumerate(urls) if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"DG_ALERTMANAGER_URLS entries {bad} are not http(s) URLs")
        return urls


class RouterMetrics:
    """Incident and Alertmanager metrics, served on the router's ``/metrics``."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.posts = Counter("distillguard_router_alertmanager_posts", "Posts to an Alertmanager replica",
                             ["replica", "outcome"], registry=r)
        self.post_latency = Histogram("distillguard_router_alertmanager_post_seconds",
                                      "Time to post to an Alertmanager replica", ["replica"], registry=r,
                                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.replica_up = Gauge("distillguard_router_alertmanager_up",
                                "1 if the replica took the last post", ["replica"], registry=r)
        self.silences = Counter("distillguard_router_silences", "Silences created or deleted for snoozes",
                                ["change"], registry=r)
        self.transitions = Counter("distillguard_router_incident_changes", "Incident lifecycle changes",
                                   ["change"], registry=r)
        self.actions = Counter("distillguard_router_actions", "Enforcement recommendations produced", ["action"],
                               registry=r)
        self.gap_repairs = Counter("distillguard_router_gap_repairs",
                                   "Alert records the consumer skipped and the router re-read itself", registry=r)
        self.bad_input = Counter("distillguard_router_bad_input", "Alert or feedback records not understood",
                                 ["topic"], registry=r)
        self.incidents = Gauge("distillguard_router_incidents", "Incidents held by this router", ["status"],
                               registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# Alerts per POST: Alertmanager takes any number, but one huge body per tick would hold
# the router's loop while a replica parses it.
POST_BATCH = 500


def _log_seal_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("sealing the router's changelogs failed (tried again at the next tick): %r", task.exception())


def create_router_app(settings: RouterSettings, config: RoutesConfig, *, clock=time.time,
                      kafka_config: dict | None = None) -> faust.App:
    """Build the router app from its settings and a validated routes file."""
    return AlertRouter(settings, config, clock=clock, kafka_config=kafka_config).app


class AlertRouter:
    """The router: its topics and tables, the agents, the tick, the posters and the pages of one app.

    The agents are short ``async for`` loops (``_agents``): an alert record goes through
    :meth:`take_alert`, a feedback record through :meth:`apply_feedback_record`; the tick
    (:meth:`tick`) runs the lifecycle's clock and re-posts; one poster per Alertmanager replica
    (:meth:`replica_poster`) sends what is due; snoozes are kept as silences on every replica.
    """

    def __init__(self, settings: RouterSettings, config: RoutesConfig, *, clock=time.time,
                 kafka_config: dict | None = None) -> None:
        from distillguard.streams.app import faust_app

        self.settings, self.config, self.clock = settings, config, clock
        data_dir = Path(settings.data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        # librdkafka settings for the router's own reads (gap repair): same broker and security.
        self.kafka_config = kafka_config or settings.confluent_config()
        # The alerts topic is created with DG_REPLICATION_FACTOR (by the workers or router_topics).
        self.app = faust_app(settings, data_dir, auto_offset_reset=settings.start_from,
                             replication_probe_topic=settings.alerts_topic)
        self.metrics = RouterMetrics()
        self.client = AlertmanagerClient(settings.alertmanager_urls, settings.alertmanager_timeout_s)
        self.replicas = range(len(self.client.urls))
        self.firing_for_ms = int(settings.alertmanager_ends_after_ticks * config.lifecycle.tick_s * 1000)
        self._topics_and_tables()
        # Changelog partitions written since the last tick, sealed at the tick and at a stop
        # (ChangelogSeals: so a router that takes over restores every incident on tansu too).
        self.seals = ChangelogSeals(self._flush_producer)
        self.seal_task: asyncio.Future | None = None
        self.idle_since = time.monotonic()  # 0 while the alerts agent is inside a record
        self.locks: dict[bytes, asyncio.Lock] = {}
        # One poster per replica (replica_poster): a slow or black-holed replica delays only its
        # own posts, never the alerts agent nor the other replicas. Each poster builds its post
        # from the table when it sends it, one at a time, so a replica never gets an older state
        # after a newer one (a stale "firing" after a resolve would page again).
        self.due: list[set[bytes]] = [set() for _ in self.replicas]  # incidents to post (bounded by the table)
        self.due_all = [False for _ in self.replicas]  # the tick's re-post of every incident
        self.wake = [asyncio.Event() for _ in self.replicas]
        self.replica_down: dict[int, bool] = {}
        self.silence_task: asyncio.Future | None = None  # the one background silence reconciliation
        self.silence_again = False
        self._agents()
        self._timers()
        self._signals()
        self._pages()
        self.app.distillguard_router_metrics = self.metrics

    def _topics_and_tables(self) -> None:
        settings, app = self.settings, self.app
        raw = {"key_serializer": "raw", "value_serializer": "raw", "partitions": settings.partitions}
        self.alerts_topic = app.topic(settings.alerts_topic, **raw)
        self.feedback_topic = app.topic(settings.feedback_topic, **raw)
        self.actions_topic = app.topic(settings.actions_topic, **raw)
        self.failed_topic = app.topic(settings.failed_topic, **raw)
        # entity key ("key:ID") -> JSON incident state; bytes so the changelog is readable as is.
        self.incidents = app.Table("incidents", partitions=settings.partitions, key_type=bytes, value_type=bytes)
        # alerts partition -> highest offset applied with every earlier one applied too. Faust can
        # commit past a record it fetched but never handed to the agent (a record dropped while a
        # rebalance suspends the flow is later counted as a "gap" and committed), so the router
        # keeps its own contiguous position and re-reads any hole itself (see repair_gap).
        self.positions = app.Table("alert-positions", partitions=settings.partitions, key_type=bytes,
                                   value_type=bytes)
        self.applied: dict[int, int] = {}
        # entity key -> JSON {until, p(artition), ids (silence id per replica, "" = not there yet),
        # off (unsnoozed: ids left to delete), old ([replica, id] of an earlier end, to delete),
        # by, why}: snoozes, held as Alertmanager silences.
        self.snoozes = app.Table("snoozes", partitions=settings.partitions, key_type=bytes, value_type=bytes)

    # -- agents, timers, tasks, signals, pages: Faust's shapes, each a few lines calling a method --
    def _agents(self) -> None:
        app = self.app

        # Records are acked explicitly, after their incident change and post are recorded in
        # the table (whose changelog Faust flushes before it commits offsets); a cancelled step
        # is not acked, so it is read again.
        @app.agent(self.alerts_topic, name="route-alerts")
        async def route_alerts(stream):
            async for event in stream.noack().events():
                await self.take_alert(event)

        @app.agent(self.feedback_topic, name="apply-feedback")
        async def apply_feedback(stream):
            async for event in stream.noack().events():
                await self.apply_feedback_record(event.message)
                event.ack()

    def _timers(self) -> None:
        app = self.app

        @app.timer(self.config.lifecycle.tick_s)
        async def tick() -> None:
            await self.tick()

        @app.task
        async def post_to_alertmanager() -> None:
            await asyncio.gather(*(self.replica_poster(index) for index in self.replicas))

    def _signals(self) -> None:
        app = self.app

        @app.on_partitions_revoked.connect
        async def forget_positions(app, revoked, **kwargs) -> None:
            self.forget_positions(revoked)

        @app.on_before_shutdown.connect
        async def close_client(app, **kwargs) -> None:
            await self.close()

    def _pages(self) -> None:
        from distillguard.streams.app import serve_metrics

        app = self.app

        @app.page("/health")
        async def health(web, request):
            return web.json({"status": "ok", "incidents": len(self.incidents.data),
                             "alertmanager": self.client.names})

        serve_metrics(app, self.metrics)

        @app.page("/incidents")
        async def incident_rows(web, request):
            # Operators and tests: the incidents this router holds (state has no secrets, no prompts).
            rows = [lifecycle.decode(v) for v in list(self.incidents.data.values())]
            return web.json({"incidents": rows})

    async def close(self) -> None:
        if self.silence_task is not None:
            self.silence_task.cancel()  # the next router's tick reconciles again
        try:  # what changed since the last tick, before the producer stops (bounded: a broker
            # gone at shutdown must not hold the stop; the records sent stand)
            await asyncio.wait_for(self.seals.seal(), timeout=5.0)
        except Exception:  # noqa: BLE001
            log.warning("sealing the router's changelogs at shutdown failed", exc_info=True)
        await self.client.close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _flush_producer(self) -> None:
        await self.app.producer.flush()

    # -- incidents ---------------------------------------------------------------------
    def save(self, key: bytes, state: dict | None, partition: int) -> None:
        incidents = self.incidents
        if state is None:
            if incidents.data.pop(key, None) is not None:
                self.changelog(incidents, partition, key, None)
            return
        value = lifecycle.encode(state)
        incidents.data[key] = value
        self.changelog(incidents, partition, key, value)

    def changelog(self, table, partition: int, key: bytes, value: bytes | None) -> None:
        """Every changelog record of the router's tables goes out here: sent, and its partition
        marked for the tick's seal (``ChangelogSeals``)."""
        table.send_changelog(partition, key, value)
        self.seals.written(table, partition, key)

    def lock(self, key: bytes) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def apply(self, key: bytes, transition: lifecycle.Transition, partition: int, source: str = "") -> None:
        self.metrics.transitions.labels(change=transition.change).inc()
        if transition.changed:
            self.save(key, transition.state, partition)
            state = transition.state or {}
            log.info("incident %s %s%s%s", state.get("dedup_key", key.decode()), transition.change,
                     f" ({transition.reason})" if transition.reason else "", f" [{source}]" if source else "")

    async def push(self, key: bytes) -> None:
        """Have the incident posted now (a new page need not wait for the tick); send its owed action."""
        self.request_post([key])  # the posters send it: the alerts agent never waits for a replica
        await self.send_action(key)

    async def send_action(self, key: bytes) -> None:
        async with self.lock(key):
            state = lifecycle.decode(self.incidents.data.get(key))
            record = policy_actions.next_action(state, self.config.actions, self.now_ms()) if state else None
            if record is None:
                return
            for page in policy_actions.pages(record, self.settings.action_page_keys):  # every key, paged
                await self.actions_topic.send(key=state["entity_id"].encode(), value=page.to_bytes())
            policy_actions.mark_acted(state, record)
            self.metrics.actions.labels(action=record.action).inc()
            self.save(key, state, state["partition"])  # recorded before the offset can be committed

    # -- the alerts agent ----------------------------------------------------------------
    async def take_alert(self, event) -> None:
        """An alerts record from the stream: holes before it re-read first, then routed and acked."""
        message = event.message
        log.debug("alert %s:%s@%s", message.topic, message.partition, message.offset)
        self.idle_since = 0.0
        await self.repair_gap(message.partition, message.offset)
        await self.route_alert(message)
        self.mark_applied(message.partition, message.offset)
        event.ack()
        self.idle_since = time.monotonic()

    async def route_alert(self, message) -> None:
        parsed = Alert.parse(message.value)
        if isinstance(parsed, BadAlert):
            self.metrics.bad_input.labels(topic="alerts").inc()
            log.warning("alert %s:%s is not an alert v1 (%s); skipped", message.partition, message.offset, parsed.reason)
            return
        alert = parsed.to_dict()
        if self.config.allowlist.allows(alert):
            self.metrics.transitions.labels(change="allowlisted").inc()
            return
        key = lifecycle.entity_key(alert["entity_type"], alert["entity_id"]).encode()
        try:
            async with self.lock(key):
                transition = lifecycle.on_alert(
                    lifecycle.decode(self.incidents.data.get(key)), alert, now_ms=self.now_ms(),
                    partition=message.partition, lifecycle=self.config.lifecycle)
                self.apply(key, transition, message.partition,
                           f"{message.topic}:{message.partition}@{message.offset}")
            if transition.change in ("opened", "escalated"):
                await self.push(key)
            else:
                await self.send_action(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad incident must not stop the router
            log.exception("routing alert %s failed", alert["alert_id"])

    # -- the router's own position on the alerts topic (gap repair) ----------------------
    def position(self, partition: int) -> int:
        if partition not in self.applied:
            value = self.positions.data.get(str(partition).encode())
            self.applied[partition] = int(value) if value else -1
        return self.applied[partition]

    def mark_applied(self, partition: int, offset: int) -> None:
        if offset > self.position(partition):
            self.applied[partition] = offset
            key, value = str(partition).encode(), str(offset).encode()
            self.positions.data[key] = value
            self.changelog(self.positions, partition, key, value)

    def forget_positions(self, revoked) -> None:
        for tp in revoked:
            if tp.topic == self.settings.alerts_topic:
                self.applied.pop(tp.partition, None)  # re-read from the table when next assigned

    async def repair_gap(self, partition: int, offset: int) -> None:
        """Apply, in order, any records of this partition between our position and ``offset``."""
        last = self.position(partition)
        if last < 0 or offset <= last + 1:
            return  # nothing applied here yet: where the group starts is where this router starts
        missing, complete = await asyncio.to_thread(
            read_partition, self.kafka_config, f"{self.settings.app_id}-gap-repair", self.settings.alerts_topic,
            partition, last + 1, offset)
        if not complete:
            log.error("alerts partition %d: reading offsets %d..%d back timed out (%d read)", partition, last + 1,
                      offset - 1, len(missing))
        if missing:
            self.metrics.gap_repairs.inc(len(missing))
            log.warning("alerts partition %d: %d record(s) before offset %d were not handed to the router; "
                        "re-read and applied", partition, len(missing), offset)
        for record in missing:
            await self.route_alert(record)
            self.mark_applied(partition, record.offset)

    async def repair_tail_holes(self) -> None:
        # A hole at the end of a partition has no later record to reveal it: when the agent
        # has been idle for a while and the partition's end is past our position, read it.
        idle_since = self.idle_since
        if not idle_since or time.monotonic() - idle_since < 3 * self.config.lifecycle.tick_s:
            return
        try:
            consumer = self.app.consumer
            assigned = [tp for tp in consumer.assignment() if tp.topic == self.settings.alerts_topic]
            highs = {tp.partition: consumer.highwater(tp) for tp in assigned}
        except Exception:  # noqa: BLE001 - mid-rebalance: next tick
            return
        for partition, high in highs.items():
            if high is not None and 0 <= self.position(partition) < high - 1:
                await self.repair_gap(partition, high)

    # -- the tick ------------------------------------------------------------------------
    async def tick(self) -> None:
        # Auto-resolve quiet incidents, expire old resolved ones, re-post every active incident
        # (and resolves not every replica took) to every replica, and keep snoozes' silences.
        await self.repair_tail_holes()
        self.request_silence_sync()
        counts: dict[str, int] = {}
        for key in list(self.incidents.data.keys()):
            state = await self.tick_incident(key)
            if state is not None:
                counts[state["status"]] = counts.get(state["status"], 0) + 1
        self.request_post(None)
        for key in list(self.incidents.data.keys()):
            await self.send_action(key)
        for key in [k for k, lock in self.locks.items() if k not in self.incidents.data and not lock.locked()]:
            self.locks.pop(key, None)  # bounded: no lock left behind for expired incidents
        for status in ("open", "escalated", "acknowledged", "resolved"):
            self.metrics.incidents.labels(status=status).set(counts.get(status, 0))
        self.request_seal()

    def request_seal(self) -> None:
        """Seal the changelogs written since the last tick (``ChangelogSeals``) in a task of its
        own: a broker that does not answer must not hold the tick, whose re-posts keep the
        incidents firing on Alertmanager."""
        if self.seal_task is None or self.seal_task.done():
            self.seal_task = asyncio.ensure_future(self.seals.seal())
            self.seal_task.add_done_callback(_log_seal_failure)

    async def tick_incident(self, key: bytes) -> dict | None:
        """Move one incident on by the clock; its state after (None: gone, or not looked at now)."""
        lock = self.lock(key)
        if lock.locked():
            return None  # being changed right now: posted by its own handler
        async with lock:
            state = lifecycle.decode(self.incidents.data.get(key))
            if state is None:
                return None
            transition = lifecycle.on_tick(state, now_ms=self.now_ms(), lifecycle=self.config.lifecycle)
            if transition.changed:
                self.apply(key, transition, state["partition"])
        return transition.state

    # -- posting to the Alertmanager replicas ----------------------------------------------
    def owes_post(self, state: dict | None, index: int) -> bool:
        return state is not None and (state["status"] in lifecycle.ACTIVE or
                                      lifecycle.owes_resolve(state, index))

    def request_post(self, keys: list[bytes] | None) -> None:
        """Have every replica's poster post these incidents (None: all of them) as soon as it can."""
        for index in self.replicas:
            if keys is None:
                self.due_all[index] = True
            else:
                self.due[index].update(keys)
            self.wake[index].set()

    async def replica_poster(self, index: int) -> None:
        while True:
            await self.wake[index].wait()
            self.wake[index].clear()
            keys = list(self.incidents.data.keys()) if self.due_all[index] else list(self.due[index])
            self.due_all[index] = False
            self.due[index].clear()
            try:
                await self.post(index, keys)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the poster must outlive one bad post; the next tick re-posts
                log.exception("posting to Alertmanager %s failed", self.client.names[index])

    async def post(self, index: int, keys: list[bytes]) -> None:
        """Post these incidents' current state to one replica; record the resolves it took."""
        states = [s for s in (lifecycle.decode(self.incidents.data.get(k)) for k in keys)
                  if self.owes_post(s, index)]
        if not states:
            return
        now = self.now_ms()
        alerts = [a for s in states
                  for a in am.incident_alerts(s, now, self.firing_for_ms, self.config.dashboard_url)]
        started = time.perf_counter()
        took = True
        for begin in range(0, len(alerts), POST_BATCH):
            outcome = await self.client.post_alerts(index, alerts[begin:begin + POST_BATCH])
            await self.report_replica(index, outcome, len(states))
            took = took and outcome.ok
        self.metrics.post_latency.labels(replica=self.client.names[index]).observe(time.perf_counter() - started)
        if took:
            self.mark_resolved(index, [s for s in states if lifecycle.owes_resolve(s, index)])

    def mark_resolved(self, index: int, posted: list[dict]) -> None:
        for sent in posted:
            key = lifecycle.entity_key(sent["entity_type"], sent["entity_id"]).encode()
            state = lifecycle.decode(self.incidents.data.get(key))
            if state is not None and lifecycle.owes_resolve(state, index) and state["dedup_key"] == sent["dedup_key"]:
                lifecycle.mark_resolve_posted(state, index)
                self.save(key, state, state["partition"])

    async def report_replica(self, index: int, outcome, incident_count: int) -> None:
        self.metrics.posts.labels(replica=outcome.replica, outcome="ok" if outcome.ok else "failed").inc()
        self.metrics.replica_up.labels(replica=outcome.replica).set(1 if outcome.ok else 0)
        if self.replica_down.get(index, False) == (not outcome.ok):
            return
        self.replica_down[index] = not outcome.ok
        # Once per change, not per incident and tick: the posts go on every tick regardless.
        if outcome.ok:
            log.warning("Alertmanager %s takes posts again", outcome.replica)
        else:
            log.warning("Alertmanager %s refused or unreachable (%s); re-posting every tick", outcome.replica,
                        outcome.error)
        await self.failed_topic.send(key=outcome.replica.encode(), value=json.dumps({
            "schema": "distill.alertmanager_replica.v1", "replica": outcome.replica,
            "event": "recovered" if outcome.ok else "unreachable", "status": outcome.status,
            "last_error": outcome.error, "incidents": incident_count, "ts": iso_ms(self.now_ms())}).encode())

    # -- feedback ------------------------------------------------------------------------
    async def apply_feedback_record(self, message) -> None:
        record = Feedback.parse(message.value)
        if isinstance(record, BadFeedback):
            self.metrics.bad_input.labels(topic="feedback").inc()
            log.warning("feedback %s:%s skipped: %s", message.partition, message.offset, record)
            return
        key = lifecycle.entity_key(record.entity_type, record.entity_id).encode()
        try:
            if record.action in ("snooze", "unsnooze"):
                # Kept beside the incidents (an entity may be snoozed before it has one).
                self.apply_snooze(record, key, message.partition)
                return
            async with self.lock(key):
                state = lifecycle.decode(self.incidents.data.get(key))
                transition = lifecycle.on_feedback(state, record.action, now_ms=self.now_ms(),
                                                   lifecycle=self.config.lifecycle, actor=record.actor,
                                                   reason=record.reason)
                self.apply(key, transition, state["partition"] if state else message.partition,
                           f"{message.topic}:{message.partition}@{message.offset}")
            if transition.changed:
                await self.push(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("applying feedback to %s failed", key.decode())

    # -- snoozes, held as silences on every replica ----------------------------------------
    def apply_snooze(self, record: Feedback, key: bytes, partition: int) -> None:
        entry = self.snooze_entry(key)
        if record.action == "snooze":
            old = [] if entry is None else entry["old"] + [[i, sid] for i, sid in enumerate(entry["ids"]) if sid]
            entry = {"until": record.until_ms, "p": partition, "by": record.actor, "why": record.reason,
                     "ids": [""] * len(self.client.urls), "old": old}
            log.info("%s snoozed until %s by %s", key.decode(), record.until, record.actor)
        elif entry is not None:
            entry["off"] = 1
            log.info("%s unsnoozed by %s", key.decode(), record.actor)
        else:
            log.info("%s unsnoozed by %s: it was not snoozed", key.decode(), record.actor)
            return
        self.save_snooze(key, entry)
        self.request_silence_sync()

    def save_snooze(self, key: bytes, entry: dict | None) -> None:
        snoozes = self.snoozes
        if entry is None:
            old = snoozes.data.pop(key, None)
            if old is not None:
                self.changelog(snoozes, json.loads(old)["p"], key, None)
            return
        value = json.dumps(entry, separators=(",", ":")).encode()
        snoozes.data[key] = value
        self.changelog(snoozes, entry["p"], key, value)

    def snooze_entry(self, key: bytes) -> dict | None:
        value = self.snoozes.data.get(key)
        if not value:
            return None
        replicas = len(self.client.urls)
        entry = json.loads(value)
        entry["ids"] = (list(entry.get("ids") or []) + [""] * replicas)[:replicas]
        entry["old"] = [pair for pair in entry.get("old") or [] if pair[0] < replicas]
        return entry

    def snooze_over(self, entry: dict) -> bool:
        return bool(entry.get("off")) or entry["until"] <= self.now_ms()

    def record_silence(self, key: bytes, index: int, silence_id: str | None, *, deleted: str = "") -> None:
        """Write one replica's silence id (None: unchanged) and a deleted old one into the entry as
        it is *now*: the replicas' syncs interleave, each writes only its own replica's part."""
        entry = self.snooze_entry(key)
        if entry is None:
            return
        if silence_id is not None:
            entry["ids"][index] = silence_id
        entry["old"] = [pair for pair in entry["old"] if pair != [index, deleted]]
        done = self.snooze_over(entry) and not any(entry["ids"]) and not entry["old"]
        self.save_snooze(key, None if done else entry)

    async def sync_silence(self, key: bytes, index: int, active: set[str] | None) -> None:
        """Make one replica hold this snooze's silence (or, snooze over, not hold it any more)."""
        entry = self.snooze_entry(key)
        if entry is None:
            return
        await self.delete_old_silences(key, index, entry)
        silence_id = entry["ids"][index]
        if entry.get("off"):
            if silence_id and await self.client.delete_silence(index, silence_id):
                self.metrics.silences.labels(change="deleted").inc()
                self.record_silence(key, index, "")
            elif not silence_id:
                self.record_silence(key, index, "")  # drops the entry once nothing is left anywhere
            return
        if entry["until"] <= self.now_ms():
            self.record_silence(key, index, "")  # ended: Alertmanager expires the silence itself
            return
        if silence_id and (active is None or silence_id in active):
            return  # there (or the replica cannot be read now: next tick)
        await self.create_silence(key, index, entry)

    async def delete_old_silences(self, key: bytes, index: int, entry: dict) -> None:
        for old_index, old_id in entry["old"]:  # silences of a snooze given a new end
            if old_index == index and await self.client.delete_silence(index, old_id):
                self.metrics.silences.labels(change="deleted").inc()
                self.record_silence(key, index, None, deleted=old_id)

    async def create_silence(self, key: bytes, index: int, entry: dict) -> None:
        entity_type, _, entity_id = key.decode().partition(":")
        body = am.silence(entity_type, entity_id, now_ms=self.now_ms(), until_ms=entry["until"],
                          actor=entry.get("by", ""), reason=entry.get("why", ""))
        created = await self.client.create_silence(index, body)
        if created:
            self.metrics.silences.labels(change="created").inc()
            self.record_silence(key, index, created)

    async def reconcile_replica_silences(self, index: int) -> None:
        active = await self.client.active_silence_ids(index)  # None: unreadable now, only create missing ones
        for key in list(self.snoozes.data.keys()):
            await self.sync_silence(key, index, active)

    async def reconcile_silences(self) -> None:
        """Each replica holds every current snooze's silence (a restarted one may have lost it)."""
        while True:
            self.silence_again = False
            if self.snoozes.data:
                await asyncio.gather(*(self.reconcile_replica_silences(index) for index in self.replicas))
            if not self.silence_again:
                return

    def request_silence_sync(self) -> None:
        # In the background: a hung replica must hold back neither the feedback agent nor the
        # tick (whose re-posts keep the other replicas' alerts from ending).
        running = self.silence_task
        if running is None or running.done():
            self.silence_task = asyncio.ensure_future(self.reconcile_silences())
        else:
            self.silence_again = True


def router_topics(settings: RouterSettings, bootstrap_config: dict, timeout: float = 15.0,
                  names: tuple[str, ...] | None = None) -> int:
    """Create the router's topics (or only ``names``) with the alerts topic's partition count; returns it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(bootstrap_config)
    topics = admin.list_topics(timeout=timeout).topics
    partitions = len(topics[settings.alerts_topic].partitions) if settings.alerts_topic in topics \
        else settings.partitions
    names = names or (settings.alerts_topic, settings.feedback_topic, settings.actions_topic, settings.failed_topic)
    replication = settings.replication_factor  # one setting for all topics (KafkaSettings)
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in names
              if name not in topics]
    for name, future in (admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []):
        try:
            future.result(timeout)
        except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return partitions
