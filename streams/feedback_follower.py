"""The detector worker's view of on-call feedback: every partition of ``distill.feedback``.

Why not a Faust agent in the worker's consumer group: a group splits the partitions, but a
suppression must reach whichever worker emits the entity's next alert (key alerts come from
the owner of the key's ``llm.requests`` partition, cluster alerts from the owner of the links
partition, and neither follows the feedback topic's partitioning). So each worker follows
the whole (small) topic from the start with its own unassigned consumer, in a thread, like
the cluster detector rebuilds from the links topic: no changelog, same state on every worker
and after every restart (suppressions expire from the feedback's own timestamp).

Each record is also buffered into the ClickHouse ``feedback`` table (ReplacingMergeTree on
the feedback id, so several workers inserting it, or a re-read after restart, store one row).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from distillguard.contracts.feedback import BadFeedback, Feedback
from distillguard.models.suppression import SuppressionList
from distillguard.sinks.errors import SinkBackpressureError

log = logging.getLogger(__name__)


class FeedbackFollower:
    """Reads the feedback topic into a :class:`SuppressionList`; ``suppresses(alert)`` for the agents."""

    def __init__(self, kafka_config: dict, topic: str, *, store: Callable[[dict], None] | None = None,
                 suppression: SuppressionList | None = None, clock=time.time) -> None:
        self.kafka_config = kafka_config
        self.topic = topic
        self.store = store
        self.suppression = suppression or SuppressionList()
        self.clock = clock
        self.records = 0
        self.bad = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer = None
        self._partitions = 0

    @classmethod
    def for_worker(cls, settings, sink) -> "FeedbackFollower":
        return cls(settings.confluent_config(), settings.feedback_topic, store=getattr(sink, "add_feedback", None))

    def suppresses(self, alert: dict) -> bool:
        """True when the alert's entity was marked a false positive and the mark has not expired."""
        return self.suppression.suppressed(alert["entity_type"], alert["entity_id"], now_ms=int(self.clock() * 1000))

    # -- reading ---------------------------------------------------------------------------
    def _assign(self) -> bool:
        """Assign every partition from the start, once the topic exists."""
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer({**self.kafka_config, "group.id": f"feedback-follower-{os.getpid()}",
                                       "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        metadata = self._consumer.list_topics(self.topic, timeout=5)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        if len(topic.partitions) != self._partitions:
            self._partitions = len(topic.partitions)
            self._consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self._partitions)])
        return True

    def _apply(self, value: bytes | None) -> None:
        record = Feedback.parse(value)
        if isinstance(record, BadFeedback):
            self.bad += 1
            log.warning("feedback record skipped: %s", record)
            return
        self.records += 1
        if record.action == "false_positive":
            self.suppression.add(record.entity_type, record.entity_id, ts_ms=record.ts_ms)
        if self.store is not None:
            while not self._stop.is_set():
                try:
                    self.store(record)
                    break
                except SinkBackpressureError as exc:
                    time.sleep(exc.retry_after)

    def catch_up(self, timeout: float = 10.0) -> int:
        """Read what the topic holds now (call before the agents start); returns records read."""
        from confluent_kafka import TopicPartition

        try:
            if not self._assign():
                return 0
            ends = {p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5)[1]
                    for p in range(self._partitions)}
            done = {p: end <= 0 for p, end in ends.items()}
            deadline = time.monotonic() + timeout
            while not all(done.values()) and time.monotonic() < deadline:
                msg = self._consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                self._apply(msg.value())
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    done[msg.partition()] = True
        except Exception:  # noqa: BLE001 - feedback must never stop detection
            log.exception("reading the feedback topic failed; suppressions start empty")
        return self.records

    def _follow(self) -> None:
        last_check = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_check > 5.0:  # the topic may appear or grow later
                    last_check = time.monotonic()
                    self._assign()
                if not self._partitions:
                    self._stop.wait(1.0)
                    continue
                msg = self._consumer.poll(0.5)
                if msg is not None and not msg.error():
                    self._apply(msg.value())
                self.suppression.expire(int(self.clock() * 1000))
            except Exception:  # noqa: BLE001
                log.exception("feedback follower error; retrying")
                self._stop.wait(1.0)

    def start(self) -> "FeedbackFollower":
        self._thread = threading.Thread(target=self._follow, name="feedback-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
