"""The worker's cluster stage: link values judged per value (optional) and the cluster agent.

A mixin of :class:`~distillguard.streams.app.DetectorWorker` (needs its ``app``,
``settings``, ``metrics``, ``links``, ``checkpoint``, ``raise_alerts`` and, with the
link-values stage, ``next_input_offset``). The detectors themselves are
:mod:`distillguard.models.clusters`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from distillguard.contracts.link_record import link_records_in
from distillguard.models.clusters import ClusterDetector, LinkMembers, LinkRefresh, SenderClock, link_step

from .checkpoint import Checkpoint

log = logging.getLogger(__name__)

PROGRESS_HEARTBEAT_S = 30.0  # an unchanged progress marker is sent again this often


class ClusterStage:
    """Link values and cluster detection of one worker."""

    def init_cluster_stage(self) -> None:
        settings, app = self.settings, self.app
        # The cluster detector's state is a function of the links topic: a worker that takes
        # over its partition rebuilds it from the records before the first one it is handed
        # (those were processed, and alerted on, before), so no changelog is needed and alert
        # ids (the hour its campaign began, see ClusterDetector._incident_id) stay the same.
        self.cluster_detector: ClusterDetector | None = None
        self.cluster_applied = -1
        if not settings.link_values_partitioned:  # linking in the cluster agent
            return
        # Input partition -> the event time up to which its link values were sent (progress markers).
        self.values_sent_to: dict[int, int] = {}
        # Link-values partition -> input partition -> how far its values were judged there (None:
        # all of them, the sender caught up); and what was last forwarded to the cluster agent.
        self.values_judged: dict[int, dict[int, int | None]] = {}
        self.progress_forwarded: dict[int, int | None] = {}
        self.progress_sent: tuple[dict, float] = ({}, 0.0)  # the last markers' content, and when
        self.link_values = app.topic(settings.link_values_topic, key_serializer="raw", value_serializer="raw",
                                     partitions=settings.partitions)
        # Link value -> its recent member keys (bounded: max_members, idle members dropped, idle
        # values expired by a timer), changelogged and partitioned by the value.
        self.link_members = app.Table("link-members", partitions=settings.partitions, key_type=bytes,
                                      value_type=bytes)
        self.linking = ClusterDetector()  # the linking parameters, shared with the cluster agent's detector
        # (key, link value) pairs already sent recently: the same filter replay applies in-process.
        self.refresh_links = LinkRefresh(self.linking.config.link_refresh_ms, self.linking.config.max_keys)
        # How far idle values may be forgotten: the event time the slowest input partition sending
        # values has reached (a lagging one's keys still join values the others left long ago).
        self.sender_clock = SenderClock(settings.link_sender_quiet_s, senders=range(settings.partitions),
                                        now_s=time.monotonic())
        self.link_partitions: dict[bytes, int] = {}  # link value -> its partition (bounded with the table)
        # As for key-state: the store is set per record, the changelog written once per value per
        # tick (a changelog record per set filled Faust's producer buffer and stalled the worker),
        # and the records are acked only after their values' changelog records are queued.
        self.link_checkpoint = Checkpoint(self.link_members, flush_producer=self._flush_producer)

    async def changelog_link_members(self) -> None:
        """The link members changed since the last flush to their changelog, their records acked."""
        if len(self.link_checkpoint):
            await self.link_checkpoint.flush()

    def link_value_agents(self) -> list:
        """The link-values agent and its timers (only with DG_LINK_VALUES_PARTITIONED)."""
        if not self.settings.link_values_partitioned:
            return []
        app = self.app

        @app.agent(self.link_values, name="link-values")
        async def judge_link_values(stream):
            async for event in stream.noack().events():
                await self.take_link_value(event)

        @app.timer(0.5)
        async def changelog_link_members_on_age() -> None:
            await self.changelog_link_members()

        @app.timer(interval=self.settings.link_expiry_interval_s)
        async def expire_link_values() -> None:
            self.expire_link_values()

        @app.timer(interval=self.settings.link_progress_interval_s)
        async def send_link_progress() -> None:
            try:
                await self.send_link_progress()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the broker: the next tick sends them again
                log.exception("link progress markers not sent")
                self.metrics.cluster_errors.inc()

        return [judge_link_values]

    def new_cluster_detector(self) -> ClusterDetector:
        # (with the stage, its joins come from every link-values partition at its own pace)
        partitions = self.settings.partitions if self.settings.link_values_partitioned else 0
        return ClusterDetector(link_partitions=partitions)

    async def send_link_progress(self) -> None:
        """A progress marker to every link-values partition: how far each input partition this
        worker owns has sent link values (None: it is caught up with its input, nothing more is
        coming). Behind the values sent before it, so a partition that reads it has judged them."""
        consumer = self.app.consumer
        try:
            if self.app.tables.recovery.in_recovery:
                return
            owned = [tp for tp in consumer.assignment() if tp.topic == self.settings.input_topic]
            highs = [(tp, consumer.highwater(tp)) for tp in owned]
        except Exception:  # noqa: BLE001 - mid-rebalance: the next tick reports
            return
        senders: dict[int, int | None] = {}
        for tp, high in highs:
            caught_up = high is not None and self.next_input_offset(tp) >= high
            senders[tp.partition] = None if caught_up else self.values_sent_to.get(tp.partition, -1)
        last, when = self.progress_sent
        now = time.monotonic()
        # Unchanged (an idle worker): sent again only every PROGRESS_HEARTBEAT_S, for a
        # link-values partition's new owner to hear every sender, not once a tick for ever.
        if senders and (senders != last or now - when >= PROGRESS_HEARTBEAT_S):
            marker = json.dumps({"progress": senders}, separators=(",", ":")).encode()
            for partition in range(self.settings.partitions):
                await self.link_values.send(key=b"progress", value=marker, partition=partition)
            self.progress_sent = (senders, now)  # (after every send: a failed one is sent again next tick)

    def judge_link_progress(self, event) -> bytes | None:
        """A progress marker on link-values partition ``p``: every value sent before it is judged
        (its joins sent). Returns the links-topic message telling the cluster agent how far ``p``
        has judged all senders' values, when that changed."""
        partition = event.message.partition
        judged = self.values_judged.setdefault(partition, {})
        judged.update((int(sender), ts) for sender, ts in json.loads(event.message.value)["progress"].items())
        # (an input partition never reported holds it: its owner has not started, or is gone)
        pending = [judged.get(sender, -1) for sender in range(self.settings.partitions)]
        pending = [ts for ts in pending if ts is not None]
        judged_to = min(pending) if pending else None
        if self.progress_forwarded.get(partition, -2) == judged_to:
            return None
        self.progress_forwarded[partition] = judged_to
        return json.dumps({"progress": partition, "judged_to": judged_to}, separators=(",", ":")).encode()

    def judge_link_value(self, event) -> bytes | None:
        """A link value: its key joins the value's members (the changelogged table); returns the
        links-topic message naming the keys it joins, if any."""
        kind, key, ts, *sender = json.loads(event.message.value)  # (no sender: sent before it was added)
        value_key = event.message.key
        link = LinkMembers.from_bytes(self.link_members.get(value_key)) or LinkMembers(first_ts=ts)
        linking = self.linking.config
        others = link_step(link, kind, key, ts, window_ms=linking.window_ms,
                           min_coordinated=linking.min_coordinated, max_members=linking.max_members)
        self.link_members.data[value_key] = link.to_bytes()
        self.link_partitions[value_key] = event.message.partition
        self.link_checkpoint.changed(value_key, event.message.partition)
        self.sender_clock.observe(event.message.partition, sender[0] if sender else -1, ts, time.monotonic())
        if not others:
            return None
        # (each other's last time on the value: the cluster agent may see this join before
        # the others' own records, see ClusterDetector.observe_join)
        others_ts = [link.members.get(other, ts) for other in others]
        return json.dumps({"join": kind, "key": key, "others": others, "ts": ts, "others_ts": others_ts},
                          separators=(",", ":")).encode()

    async def take_link_value(self, event) -> None:
        """A link-values message (a link value, or a worker's progress marker): judged, and what
        it tells the cluster agent sent on the links topic."""
        self.link_checkpoint.processed(event)
        try:
            judge = self.judge_link_progress if event.message.value[:1] == b"{" else self.judge_link_value
            outgoing = judge(event)
        except Exception:  # noqa: BLE001 - a bad link value or marker must not stop linking
            log.exception("link-values message %s:%s failed", event.message.partition, event.message.offset)
            self.metrics.cluster_errors.inc()
            return
        if outgoing is not None:
            await self.links.send(key=b"links", partition=0, value=outgoing)

    def expire_link_values(self) -> None:
        # Values idle for a few linking windows are forgotten (tombstoned in the changelog): the
        # table is bounded by the traffic of the last hours, not by all values ever seen. Idle
        # against the slowest sender's event time (SenderClock), per partition of the value.
        # (A timer is outside stream iteration, where Faust cannot tell a key's partition: the
        # store is edited directly and the tombstone sent to the partition the value came from.)
        now, idle_ms = time.monotonic(), self.settings.link_idle_windows * self.linking.config.window_ms
        horizons: dict[int | None, int] = {}
        for value_key, data in list(self.link_members.data.items()):
            partition = self.link_partitions.get(value_key)
            if partition not in horizons:
                horizons[partition] = self.sender_clock.horizon(partition, now, idle_ms)
            try:
                expired = LinkMembers.from_bytes(data).last_ts < horizons[partition]
            except Exception:  # noqa: BLE001 - an unreadable entry is dropped, not kept forever
                expired = True
            if expired:
                self.link_members.data.pop(value_key, None)
                self.metrics.link_values_expired.inc()
                self.link_checkpoint.forget(value_key)
                self.link_partitions.pop(value_key, None)
                if partition is not None:  # else only recovered, never touched since: local only
                    self.link_members.send_changelog(partition, value_key, None)

    def observe(self, detector: ClusterDetector, value: bytes) -> list[dict]:
        """A links-topic message: a batch of key behaviour records (a JSON list of them), one
        record (as sent before batching), or a join or a progress marker of the link-values stage."""
        if value[:1] == b"{":
            join = json.loads(value)
            if "progress" in join:
                return detector.observe_progress(join["progress"], join["judged_to"])
            return detector.observe_join(join["join"], join["key"], join["others"], join["ts"], join.get("others_ts"))
        raised = []
        for rec in link_records_in(value):
            try:
                raised.extend(detector.observe_link(rec, link=not self.settings.link_values_partitioned))
            except Exception:  # noqa: BLE001 - one bad record must not cost the rest of its batch
                log.exception("link record of key %r failed", rec.api_key_id)
                self.metrics.cluster_errors.inc()
        return raised

    def rebuild_clusters(self, upto: int) -> ClusterDetector:
        """The cluster detector as of links-topic offset ``upto`` (read from the topic)."""
        from confluent_kafka import Consumer, TopicPartition

        detector = self.new_cluster_detector()
        if upto <= 0:
            return detector
        settings = self.settings
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
                self.observe(detector, msg.value())
                if msg.offset() == upto - 1:
                    break
        finally:
            consumer.close()
        return detector

    async def take_link_record(self, event) -> None:
        """A links-topic message: observed by the cluster detector, its alerts sent; acked
        with the input records, after the flush."""
        self.checkpoint.processed(event)
        offset = event.message.offset
        try:
            if self.cluster_detector is None:
                self.cluster_detector = await asyncio.to_thread(self.rebuild_clusters, offset)
                self.cluster_applied = offset - 1
            if offset <= self.cluster_applied:
                return
            raised = self.observe(self.cluster_detector, event.message.value)
            self.cluster_applied = offset
            self.metrics.incidents_held.set(self.cluster_detector.held_incidents)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bad link record must not stop cluster detection
            log.exception("link record %s failed", offset)
            self.metrics.cluster_errors.inc()
            return
        await self.raise_alerts(raised)

    def forget_clusters_if_revoked(self, revoked) -> None:
        if any(tp.topic == self.settings.links_topic for tp in revoked):
            self.cluster_detector, self.cluster_applied = None, -1
