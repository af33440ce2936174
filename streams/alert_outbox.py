"""Alerts leave once, as soon as they are raised, and always before the events behind them are acked.

Why both an outbox and a de-duplication: the worker's outputs for an event are its ClickHouse
rows, its state's changelog record, its alert and its offset commit, and no broker here gives
a transaction over them (Faust's exactly-once needs Kafka transactions: tansu and noida-db
have none). So:

* an alert goes into the :class:`AlertOutbox` and the step that raised it sends it at once,
  before its rows reach ClickHouse: a page must not wait for the analytics store (a flush
  inside a busy worker is 120-150 ms of chDB; an outage held every page until ClickHouse came
  back). An alert whose send failed (the broker) stays queued and the flush sends it before
  the events behind it are acked (Faust flushes the producer before it commits: an alert is
  never lost behind a commit). Its ClickHouse row is stored with the event's rows, later;
* a kill after the alert left and before the rows, the changelog and the commit re-applies
  the events on restart, which raises the same alert again (its row is stored then). Before
  the first alert leaves (and after every rebalance) the outbox reads the tail of the alerts
  topic, which is the one record of what left that survives any crash, and drops an alert
  already there (:func:`alert_identity`). Before this, 4 kills re-sent 32 alert messages.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

log = logging.getLogger(__name__)


def alert_identity(alert: dict) -> tuple:
    """What makes two alert messages the same message.

    A key incident sends each severity at most once (it only escalates), so
    (alert_id, severity) names a key alert; cluster and account incidents re-send the same
    severity to name new members, so their event time and member count are part of it. A
    re-applied event raises an alert identical in all four.
    """
    return (alert.get("alert_id"), alert.get("severity"), alert.get("ts"), len(alert.get("api_key_ids") or ()))


class SentAlerts:
    """Identities of the alerts known to be on the alerts topic, the newest ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._sent: OrderedDict[tuple, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, alert: dict) -> bool:
        return alert_identity(alert) in self._sent

    def add(self, alert: dict) -> None:
        identity = alert_identity(alert)
        self._sent[identity] = None
        self._sent.move_to_end(identity)
        while len(self._sent) > self.max_entries:
            self._sent.popitem(last=False)

    def load(self, values: Iterable[bytes]) -> int:
        """Learn the alerts of ``values`` (raw alerts-topic messages); returns how many."""
        learned = 0
        for value in values:
            try:
                alert = json.loads(value)
            except (TypeError, ValueError):  # not ours (someone else wrote to the topic): ignore
                continue
            if isinstance(alert, dict) and "alert_id" in alert:
                self.add(alert)
                learned += 1
        return learned


def read_topic_tail(kafka_config: dict, group_id: str, topic: str, per_partition: int,
                    timeout_s: float = 30.0) -> tuple[list[bytes], bool]:
    """The values of the last ``per_partition`` records of every partition of ``topic`` (a
    consumer of its own, no commits), and whether every partition was read to its end."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({**kafka_config, "group.id": group_id, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    values: list[bytes] = []
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return values, True  # no topic yet: nothing was sent
        starts = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                starts.append(TopicPartition(topic, partition, max(low, high - per_partition)))
        if not starts:
            return values, True
        consumer.assign(starts)
        # (a partition's end is where the broker says EOF: tansu reports a high watermark
        # short of the true end, the start of its last batch + 1)
        open_partitions = {tp.partition for tp in starts}
        deadline = time.monotonic() + timeout_s
        while open_partitions and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                continue
            values.append(msg.value())
        return values, not open_partitions
    finally:
        consumer.close()


class AlertOutbox:
    """Alerts raised and not sent yet, sent by :meth:`send_pending`: by the step that raised
    them, and again by the flush for any a failed send left (one sender at a time).

    ``send`` is the coroutine that puts one alert on the topic; ``read_sent`` a blocking
    function returning the alerts-topic values to learn from (run in a thread); ``on_sent``
    is told how long each alert sent waited here (seconds of ``clock``, from :meth:`add`).
    """

    def __init__(self, send, read_sent, *, max_entries: int, on_duplicate=None, to_thread=None,
                 on_sent=None, clock=time.monotonic) -> None:
        self._send = send
        self._read_sent = read_sent
        self._on_duplicate = on_duplicate or (lambda alert: None)
        self._on_sent = on_sent or (lambda seconds: None)
        self._clock = clock
        self._to_thread = to_thread or asyncio.to_thread
        self.sent = SentAlerts(max_entries)
        self._pending: list[tuple[bytes, dict, float]] = []
        self._stale = True
        # The agents and the flush send: one at a time, or two would send one queued alert.
        self._sending = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: bytes, alert: dict) -> None:
        self._pending.append((key, alert, self._clock()))

    def mark_stale(self) -> None:
        """Another worker may have sent alerts of our new partitions: re-read before sending."""
        self._stale = True

    async def send_pending(self) -> int:
        """Send the queued alerts that are not on the topic yet; returns how many were sent.
        On an error the unsent ones stay queued."""
        if not self._pending:
            return 0
        async with self._sending:
            return await self._send_queued()

    async def _send_queued(self) -> int:
        count = len(self._pending)  # (alerts queued while these go out wait for the next call)
        if not count:
            return 0
        if self._stale:
            values = await self._to_thread(self._read_sent)
            learned = self.sent.load(values)
            self._stale = False
            log.info("alerts topic tail read: %d alerts already sent", learned)
        sent = 0
        for index in range(count):
            key, alert, queued_at = self._pending[index]
            if alert in self.sent:
                self._on_duplicate(alert)
                continue
            try:
                await self._send(key, alert)
            except BaseException:
                del self._pending[:index]
                raise
            self.sent.add(alert)
            self._on_sent(self._clock() - queued_at)
            sent += 1
        del self._pending[:count]
        return sent
