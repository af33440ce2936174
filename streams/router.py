"""The alert router: its own Faust app (own app id, consumer group, changelog) that pages on-call.

``distill.alerts`` -> incident lifecycle (one incident per entity, changelogged table) ->
targets from the routes file (PagerDuty, Opsgenie, Slack, Alertmanager, signed webhook),
with retries, rate limits, maintenance windows and snoozes -> ``distill.alerts.failed`` for
deliveries that exhaust their retries, and ``distill.actions`` (recommended enforcement)
once per incident version. ``distill.feedback`` (ack / resolve / false positive) changes
incidents and is passed on to the targets.

Idempotency: after every delivery the incident's per-target record (version paged, ack,
resolve) is written to the table and its changelog *before* the alert's offset can be
committed (Faust flushes the producer before it commits). A router killed mid-delivery
re-reads the uncommitted alerts, finds what the table already recorded, and re-sends only
what was not confirmed, with the same ``dedup_key`` (which the incident services collapse).
So a restart never opens a second page for an incident; it may repeat the one trigger that
was in flight.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Literal

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from distillguard.feedback import BadFeedback, parse_feedback
from distillguard.sinks.routing import actions as policy_actions
from distillguard.sinks.routing import lifecycle
from distillguard.sinks.routing.delivery import Sender
from distillguard.sinks.routing.ratelimit import TokenBucket
from distillguard.sinks.routing.routes import RoutesConfig
from distillguard.sinks.routing.targets import Target, build_targets, iso

from .holes import read_partition

log = logging.getLogger(__name__)


class RouterSettings(BaseSettings):
    """The router worker's settings (env prefix ``DG_ROUTER_``; Kafka security from ``DG_KAFKA_*``)."""

    model_config = SettingsConfigDict(env_prefix="DG_ROUTER_", frozen=True, extra="ignore", populate_by_name=True)

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


class RouterMetrics:
    """Per-target delivery metrics, served on the router's ``/metrics``."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["target", "type"]
        self.delivered = Counter("distillguard_router_delivered", "Notifications delivered", labels + ["event"],
                                 registry=r)
        self.retried = Counter("distillguard_router_retries", "Delivery attempts that were retried", labels,
                               registry=r)
        self.failed = Counter("distillguard_router_failed", "Notifications given up on (sent to the failed topic)",
                              labels + ["event"], registry=r)
        self.deferred = Counter("distillguard_router_deferred",
                                "Deliveries held back (rate limit, maintenance, snooze)", labels + ["reason"],
                                registry=r)
        self.latency = Histogram("distillguard_router_delivery_seconds", "Delivery time including retries",
                                 labels, registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
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


def _parse_alert(value: bytes | None) -> dict | None:
    try:
        alert = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(alert, dict) or alert.get("schema") != "distill.alert.v1":
        return None
    for name in ("alert_id", "entity_type", "entity_id", "severity"):
        if not isinstance(alert.get(name), str) or not alert[name]:
            return None
    if alert["severity"] not in ("info", "warning", "critical"):
        return None
    return alert


def create_router_app(settings: RouterSettings, config: RoutesConfig, secrets: dict, *,
                      clock=time.time, kafka_config: dict | None = None) -> faust.App:
    """Build the router app from its settings, a validated routes file and the resolved secrets."""
    from distillguard.streams.app import faust_app, serve_metrics
    from distillguard.streams.settings import WorkerSettings

    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # librdkafka settings for the router's own reads (gap repair): same broker and security.
    kafka_config = kafka_config or {**WorkerSettings().confluent_config(),
                                    "bootstrap.servers": settings.kafka_bootstrap}
    app = faust_app(settings, WorkerSettings(), data_dir, auto_offset_reset=settings.start_from)
    metrics = RouterMetrics()
    targets: dict[str, Target] = build_targets(config, secrets)
    secret_values = [s.get_secret_value() for per_target in secrets.values() for s in per_target.values()]

    def redact(text: str) -> str:
        for value in secret_values:
            text = text.replace(value, "***")
        return text

    sender = Sender(config.delivery, redact=redact)
    now_s = time.monotonic
    buckets = {name: TokenBucket(cfg.rate_limit.per_minute, cfg.rate_limit.burst, now_s())
               for name, cfg in config.targets.items() if cfg.rate_limit}

    raw = {"key_serializer": "raw", "value_serializer": "raw", "partitions": settings.partitions}
    alerts_topic = app.topic(settings.alerts_topic, **raw)
    feedback_topic = app.topic(settings.feedback_topic, **raw)
    actions_topic = app.topic(settings.actions_topic, **raw)
    failed_topic = app.topic(settings.failed_topic, **raw)
    # entity key ("key:ID") -> JSON incident state; bytes so the changelog is readable as is.
    incidents = app.Table("incidents", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    # alerts partition -> highest offset applied with every earlier one applied too. Faust can
    # commit past a record it fetched but never handed to the agent (a record dropped while a
    # rebalance suspends the flow is later counted as a "gap" and committed), so the router
    # keeps its own contiguous position and re-reads any hole itself (see repair_gap).
    positions = app.Table("alert-positions", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    applied: dict[int, int] = {}
    # entity key -> b"<until ms>:<partition>": snoozes from `distillguard snooze` (feedback).
    snoozes = app.Table("snoozes", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    agent_busy = {"idle_since": time.monotonic()}  # 0 while the alerts agent is inside a record
    locks: dict[bytes, asyncio.Lock] = {}

    def now_ms() -> int:
        return int(clock() * 1000)

    def save(key: bytes, state: dict | None, partition: int) -> None:
        if state is None:
            if incidents.data.pop(key, None) is not None:
                incidents.send_changelog(partition, key, None)
            return
        value = lifecycle.encode(state)
        incidents.data[key] = value
        incidents.send_changelog(partition, key, value)

    def muted(state: dict, target: str) -> str | None:
        snoozed = snoozes.data.get(lifecycle.entity_key(state["entity_type"], state["entity_id"]).encode())
        if snoozed and int(snoozed.split(b":")[0]) > now_ms():
            return f"snoozed until {iso(int(snoozed.split(b':')[0]))}"
        facts = {"entity_type": state["entity_type"], "entity_id": state["entity_id"],
                 "severity": state["severity"], "score": state["score"], "org_id": state.get("org_id")}
        return config.muted(facts, target, now_ms())

    async def deliver(state: dict, target_name: str, event: str) -> tuple[str, str, int, object]:
        target = targets[target_name]
        note = lifecycle.notification(state, event)
        requests = target.build(note, now_ms())
        if not requests:
            return target_name, event, state["version"], None
        outcome = await sender.send(requests, target.config.timeout_s)
        labels = {"target": target_name, "type": target.kind}
        metrics.latency.labels(**labels).observe(outcome.latency_s)
        if outcome.retries:
            metrics.retried.labels(**labels).inc(outcome.retries)
        return target_name, event, state["version"], outcome

    async def reconcile(key: bytes) -> None:
        """Send whatever the incident still owes its targets and the gateway; record it."""
        lock = locks.setdefault(key, asyncio.Lock())
        async with lock:
            state = lifecycle.decode(incidents.data.get(key))
            if state is None:
                return
            produced = False
            # A target that just got the trigger may owe the ack or resolve next: a few rounds.
            for _ in range(3):
                due = due_deliveries(state)
                if not due:
                    break
                produced = True
                await deliver_all(state, due)
                save(key, state, state["partition"])  # recorded before the offset can be committed
            record = policy_actions.next_action(state, config.actions, now_ms())
            if record is not None:
                for page in policy_actions.pages(record, settings.action_page_keys):  # every key, paged
                    await actions_topic.send(key=state["entity_id"].encode(), value=json.dumps(page).encode())
                policy_actions.mark_acted(state, record)
                metrics.actions.labels(action=record["action"]).inc()
            if produced or record is not None:
                save(key, state, state["partition"])

    def due_deliveries(state: dict) -> list[tuple[str, str]]:
        due = []
        for target_name, event in lifecycle.pending(state):
            labels = {"target": target_name, "type": targets[target_name].kind}
            if grouped(target_name, event, state):
                continue  # posted with others by flush_groups
            why = muted(state, target_name) if event == "trigger" else None
            if why:
                metrics.deferred.labels(**labels, reason=why.split(" ", 1)[0]).inc()
                continue
            bucket = buckets.get(target_name)
            if bucket is not None and not bucket.take(now_s()):
                metrics.deferred.labels(**labels, reason="rate_limit").inc()
                continue
            due.append((target_name, event))
        return due

    async def deliver_all(state: dict, due: list[tuple[str, str]]) -> None:
        results = await asyncio.gather(*(deliver(state, t, e) for t, e in due))
        for target_name, event, version, outcome in results:
            labels = {"target": target_name, "type": targets[target_name].kind}
            if outcome is None or outcome.ok:
                lifecycle.mark_delivered(state, target_name, event, version)
                metrics.delivered.labels(**labels, event=event).inc()
                log.info("delivered %s %s v%d to %s", event, state["dedup_key"], version, target_name)
                continue
            await report_failure(state, target_name, event, version, outcome)

    async def report_failure(state: dict, target_name: str, event: str, version: int, outcome) -> None:
        lifecycle.mark_failed(state, target_name, event, version)
        metrics.failed.labels(target=target_name, type=targets[target_name].kind, event=event).inc()
        log.warning("delivery of %s %s v%d to %s failed after %d attempts: %s", event,
                    state["dedup_key"], version, target_name, outcome.attempts, outcome.error)
        await failed_topic.send(key=state["dedup_key"].encode(), value=json.dumps({
            "schema": "distill.delivery_failure.v1", "target": target_name,
            "target_type": targets[target_name].kind, "event": event, "dedup_key": state["dedup_key"],
            "version": version, "incident": state["alert_id"], "entity_type": state["entity_type"],
            "entity_id": state["entity_id"], "attempts": outcome.attempts, "status": outcome.status,
            "last_error": outcome.error, "ts": iso(now_ms())}).encode())

    def grouped(target_name: str, event: str, state: dict) -> bool:
        """A new incident's trigger to a target that posts new incidents in groups (Slack group_wait_s)."""
        return (getattr(config.targets[target_name], "group_wait_s", 0) > 0 and event == "trigger"
                and state["targets"][target_name]["v"] == 0)

    async def flush_groups() -> None:
        """Post the new incidents waiting for a grouping target once the oldest has waited group_wait_s."""
        for name, cfg in config.targets.items():
            if getattr(cfg, "group_wait_s", 0) <= 0:
                continue
            waiting = []
            for key, value in list(incidents.data.items()):
                state = lifecycle.decode(value)
                if state and (name, "trigger") in lifecycle.pending(state) and grouped(name, "trigger", state) \
                        and not muted(state, name):
                    waiting.append((state["opened_ms"], key))
            if not waiting or now_ms() - min(waiting)[0] < cfg.group_wait_s * 1000:
                continue
            bucket = buckets.get(name)
            if bucket is not None and not bucket.take(now_s()):
                metrics.deferred.labels(target=name, type=cfg.type, reason="rate_limit").inc()
                continue
            held = []
            try:
                for _, key in sorted(waiting)[:cfg.group_max]:
                    lock = locks.setdefault(key, asyncio.Lock())
                    if not lock.locked():  # one being delivered right now waits for the next group
                        await lock.acquire()
                        held.append(key)
                states = {key: lifecycle.decode(incidents.data.get(key)) for key in held}
                states = {key: st for key, st in states.items() if st and grouped(name, "trigger", st)
                          and (name, "trigger") in lifecycle.pending(st)}
                if not states:
                    continue
                notes = [lifecycle.notification(st, "trigger") for st in states.values()]
                outcome = await sender.send(targets[name].build_group(notes, now_ms()), cfg.timeout_s)
                metrics.latency.labels(target=name, type=cfg.type).observe(outcome.latency_s)
                if outcome.retries:
                    metrics.retried.labels(target=name, type=cfg.type).inc(outcome.retries)
                for key, state in states.items():
                    if outcome.ok:
                        lifecycle.mark_delivered(state, name, "trigger", state["version"])
                        metrics.delivered.labels(target=name, type=cfg.type, event="trigger").inc()
                    else:
                        await report_failure(state, name, "trigger", state["version"], outcome)
                    save(key, state, state["partition"])
                log.info("posted %d new incidents to %s in one message: %s", len(states), name,
                         "ok" if outcome.ok else outcome.error)
            finally:
                for key in held:
                    locks[key].release()

    def apply(key: bytes, transition: lifecycle.Transition, partition: int, source: str = "") -> None:
        metrics.transitions.labels(change=transition.change).inc()
        if transition.changed:
            save(key, transition.state, partition)
            state = transition.state or {}
            log.info("incident %s %s%s%s", state.get("dedup_key", key.decode()), transition.change,
                     f" ({transition.reason})" if transition.reason else "", f" [{source}]" if source else "")

    async def route_alert(message) -> None:
        alert = _parse_alert(message.value)
        if alert is None:
            metrics.bad_input.labels(topic="alerts").inc()
            log.warning("alert %s:%s is not an alert v1; skipped", message.partition, message.offset)
            return
        if config.allowlist.allows(alert):
            metrics.transitions.labels(change="allowlisted").inc()
            return
        key = lifecycle.entity_key(alert["entity_type"], alert["entity_id"]).encode()
        try:
            async with locks.setdefault(key, asyncio.Lock()):
                transition = lifecycle.on_alert(
                    lifecycle.decode(incidents.data.get(key)), alert, now_ms=now_ms(),
                    partition=message.partition, targets=config.targets_for(alert), lifecycle=config.lifecycle)
                apply(key, transition, message.partition, f"{message.topic}:{message.partition}@{message.offset}")
            await reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad incident must not stop the router
            log.exception("routing alert %s failed", alert["alert_id"])

    async def apply_feedback_record(message) -> None:
        record = parse_feedback(message.value)
        if isinstance(record, BadFeedback):
            metrics.bad_input.labels(topic="feedback").inc()
            log.warning("feedback %s:%s skipped: %s", message.partition, message.offset, record)
            return
        key = lifecycle.entity_key(record["entity_type"], record["entity_id"]).encode()
        if record["action"] == "snooze":
            # Kept beside the incidents (an entity may be snoozed before it has one).
            value = f"{record['until_ms']}:{message.partition}".encode()
            snoozes.data[key] = value
            snoozes.send_changelog(message.partition, key, value)
            log.info("%s snoozed until %s by %s", key.decode(), record["until"], record["actor"])
            return
        try:
            async with locks.setdefault(key, asyncio.Lock()):
                state = lifecycle.decode(incidents.data.get(key))
                transition = lifecycle.on_feedback(state, record["action"], now_ms=now_ms(),
                                                   lifecycle=config.lifecycle, actor=record["actor"],
                                                   reason=record["reason"])
                apply(key, transition, state["partition"] if state else message.partition,
                      f"{message.topic}:{message.partition}@{message.offset}")
            await reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("applying feedback to %s failed", key.decode())

    # Records are acked explicitly, after their incident change and deliveries are recorded in
    # the table (whose changelog Faust flushes before it commits offsets); a cancelled step
    # is not acked, so it is read again.
    @app.agent(alerts_topic, name="route-alerts")
    async def route_alerts(stream):
        async for event in stream.noack().events():
            message = event.message
            log.debug("alert %s:%s@%s", message.topic, message.partition, message.offset)
            agent_busy["idle_since"] = 0.0
            await repair_gap(message.partition, message.offset)
            await route_alert(message)
            mark_applied(message.partition, message.offset)
            event.ack()
            agent_busy["idle_since"] = time.monotonic()

    async def repair_tail_holes() -> None:
        # A hole at the end of a partition has no later record to reveal it: when the agent
        # has been idle for a while and the partition's end is past our position, read it.
        idle_since = agent_busy["idle_since"]
        if not idle_since or time.monotonic() - idle_since < 3 * config.lifecycle.tick_s:
            return
        try:
            assigned = [tp for tp in app.consumer.assignment() if tp.topic == settings.alerts_topic]
            highs = {tp.partition: app.consumer.highwater(tp) for tp in assigned}
        except Exception:  # noqa: BLE001 - mid-rebalance: next tick
            return
        for partition, high in highs.items():
            if high is not None and 0 <= position(partition) < high - 1:
                await repair_gap(partition, high)

    def position(partition: int) -> int:
        if partition not in applied:
            value = positions.data.get(str(partition).encode())
            applied[partition] = int(value) if value else -1
        return applied[partition]

    def mark_applied(partition: int, offset: int) -> None:
        if offset > position(partition):
            applied[partition] = offset
            key, value = str(partition).encode(), str(offset).encode()
            positions.data[key] = value
            positions.send_changelog(partition, key, value)

    async def repair_gap(partition: int, offset: int) -> None:
        """Apply, in order, any records of this partition between our position and ``offset``."""
        last = position(partition)
        if last < 0 or offset <= last + 1:
            return  # nothing applied here yet: where the group starts is where this router starts
        missing, complete = await asyncio.to_thread(read_partition, kafka_config, f"{settings.app_id}-gap-repair",
                                                    settings.alerts_topic, partition, last + 1, offset)
        if not complete:
            log.error("alerts partition %d: reading offsets %d..%d back timed out (%d read)", partition, last + 1,
                      offset - 1, len(missing))
        if missing:
            metrics.gap_repairs.inc(len(missing))
            log.warning("alerts partition %d: %d record(s) before offset %d were not handed to the router; "
                        "re-read and applied", partition, len(missing), offset)
        for record in missing:
            await route_alert(record)
            mark_applied(partition, record.offset)

    @app.on_partitions_revoked.connect
    async def forget_positions(app, revoked, **kwargs) -> None:
        for tp in revoked:
            if tp.topic == settings.alerts_topic:
                applied.pop(tp.partition, None)  # re-read from the table when next assigned

    @app.agent(feedback_topic, name="apply-feedback")
    async def apply_feedback(stream):
        async for event in stream.noack().events():
            await apply_feedback_record(event.message)
            event.ack()

    @app.timer(config.lifecycle.tick_s)
    async def tick() -> None:
        # Auto-resolve quiet incidents, expire old resolved ones, and retry deliveries that
        # were deferred (rate limit, maintenance window, snooze).
        await repair_tail_holes()
        for key, value in list(snoozes.data.items()):
            until, _, partition = value.partition(b":")
            if int(until) <= now_ms():  # ended: forget it (bounded), held pages go out below
                snoozes.data.pop(key, None)
                snoozes.send_changelog(int(partition), key, None)
        await flush_groups()
        counts: dict[str, int] = {}
        for key in list(incidents.data.keys()):
            lock = locks.setdefault(key, asyncio.Lock())
            if lock.locked():
                continue  # being delivered right now: next tick
            async with lock:
                state = lifecycle.decode(incidents.data.get(key))
                if state is None:
                    continue
                transition = lifecycle.on_tick(state, now_ms=now_ms(), lifecycle=config.lifecycle)
                if transition.changed:
                    apply(key, transition, state["partition"])
            if transition.state is not None:
                counts[transition.state["status"]] = counts.get(transition.state["status"], 0) + 1
                if lifecycle.pending(transition.state) or policy_actions.next_action(
                        transition.state, config.actions, now_ms()):
                    await reconcile(key)
        for key in [k for k, lock in locks.items() if k not in incidents.data and not lock.locked()]:
            locks.pop(key, None)  # bounded: no lock left behind for expired incidents
        for status in ("open", "escalated", "acknowledged", "resolved"):
            metrics.incidents.labels(status=status).set(counts.get(status, 0))

    @app.page("/health")
    async def health(web, request):
        return web.json({"status": "ok", "incidents": len(incidents.data), "targets": sorted(targets)})

    serve_metrics(app, metrics)

    @app.page("/incidents")
    async def incident_rows(web, request):
        # Operators and tests: the incidents this router holds (state has no secrets, no prompts).
        rows = [lifecycle.decode(v) for v in list(incidents.data.values())]
        return web.json({"incidents": rows})

    @app.on_before_shutdown.connect
    async def close_sender(app, **kwargs) -> None:
        await sender.close()

    app.distillguard_router_metrics = metrics
    return app


def router_topics(settings: RouterSettings, bootstrap_config: dict, timeout: float = 15.0,
                  names: tuple[str, ...] | None = None) -> int:
    """Create the router's topics (or only ``names``) with the alerts topic's partition count; returns it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from distillguard.streams.settings import WorkerSettings

    admin = AdminClient(bootstrap_config)
    topics = admin.list_topics(timeout=timeout).topics
    partitions = len(topics[settings.alerts_topic].partitions) if settings.alerts_topic in topics \
        else settings.partitions
    names = names or (settings.alerts_topic, settings.feedback_topic, settings.actions_topic, settings.failed_topic)
    replication = WorkerSettings().replication_factor  # one setting for all topics (streams/settings.py)
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in names
              if name not in topics]
    for name, future in (admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []):
        try:
            future.result(timeout)
        except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return partitions
