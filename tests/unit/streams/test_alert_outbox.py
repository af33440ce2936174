"""The alert outbox: alerts leave once, even when a restart raises them again."""
from __future__ import annotations

import asyncio
import json

import pytest

from distillguard.streams.alert_outbox import AlertOutbox, SentAlerts, alert_identity


def alert(alert_id: str = "key:k1:1", severity: str = "warning", ts: str = "2026-02-01T00:10:00Z",
          keys=("k1",)) -> dict:
    return {"alert_id": alert_id, "severity": severity, "ts": ts, "api_key_ids": list(keys), "score": 0.9}


def run(coro):
    return asyncio.run(coro)


class Topic:
    """The alerts topic as the outbox sees it: what was sent, what it reads back."""

    def __init__(self, before=(), fail_after: int | None = None) -> None:
        self.records = [json.dumps(a).encode() for a in before]
        self.reads = 0
        self.fail_after = fail_after

    async def send(self, key: bytes, value: dict) -> None:
        if self.fail_after is not None and len(self.records) >= self.fail_after:
            raise ConnectionError("broker gone")
        self.records.append(json.dumps(value).encode())

    def read(self) -> list[bytes]:
        self.reads += 1
        return list(self.records)

    def sent(self) -> list[dict]:
        return [json.loads(r) for r in self.records]


async def inline(fn):
    return fn()


def outbox_on(topic: Topic, **kw) -> AlertOutbox:
    return AlertOutbox(topic.send, topic.read, max_entries=kw.pop("max_entries", 100), to_thread=inline, **kw)


def test_an_alert_that_left_before_a_crash_is_not_sent_again():
    first, second = alert(severity="warning"), alert(severity="critical")
    topic = Topic(before=[first])  # sent by the worker that was killed before its commit
    dropped = []
    outbox = outbox_on(topic, on_duplicate=dropped.append)
    outbox.add(b"k1", dict(first))  # the re-applied events raise both again
    outbox.add(b"k1", second)
    assert run(outbox.send_pending()) == 1
    assert [(a["alert_id"], a["severity"]) for a in topic.sent()] == [("key:k1:1", "warning"), ("key:k1:1", "critical")]
    assert dropped == [first] and len(outbox) == 0


def test_the_step_and_the_flush_sending_at_once_send_each_alert_once_and_read_the_topic_once():
    """The agent sends what its step raised while the flush sends what a failed send left:
    with a send that yields to the loop (the producer), both run interleaved."""

    class SlowTopic(Topic):
        async def send(self, key: bytes, value: dict) -> None:
            await asyncio.sleep(0)  # the other sender runs here
            await super().send(key, value)

    topic = SlowTopic()
    outbox = outbox_on(topic)

    async def both() -> list[int]:
        outbox.add(b"k1", alert("key:k1:1"))
        outbox.add(b"k2", alert("key:k2:1"))
        flush = asyncio.ensure_future(outbox.send_pending())
        await asyncio.sleep(0)  # the flush is inside its send now
        outbox.add(b"k3", alert("key:k3:1"))  # raised meanwhile: the step sends it
        return [await outbox.send_pending(), await flush]

    counts = run(both())
    assert sorted(counts) == [1, 2] and len(outbox) == 0
    assert [a["alert_id"] for a in topic.sent()] == ["key:k1:1", "key:k2:1", "key:k3:1"]
    assert topic.reads == 1
    outbox.add(b"k1", alert("key:k1:1"))  # raised again in this process (e.g. a hole re-read)
    assert run(outbox.send_pending()) == 0


def test_after_a_rebalance_the_topic_is_read_again():
    topic = Topic()
    outbox = outbox_on(topic)
    outbox.add(b"k1", alert("key:k1:1"))
    run(outbox.send_pending())
    topic.records.append(json.dumps(alert("key:k9:1")).encode())  # sent by the partition's previous owner
    outbox.mark_stale()
    outbox.add(b"k9", alert("key:k9:1"))
    assert run(outbox.send_pending()) == 0
    assert topic.reads == 2


def test_a_failed_send_keeps_the_unsent_alerts_queued():
    topic = Topic(fail_after=1)
    outbox = outbox_on(topic)
    outbox.add(b"k1", alert("key:k1:1"))
    outbox.add(b"k2", alert("key:k2:1"))
    with pytest.raises(ConnectionError):
        run(outbox.send_pending())
    assert len(outbox) == 1
    topic.fail_after = None
    assert run(outbox.send_pending()) == 1
    assert [a["alert_id"] for a in topic.sent()] == ["key:k1:1", "key:k2:1"]


def test_cluster_updates_of_one_severity_are_distinct_alerts():
    grown = alert("cluster:k1", "critical", "2026-02-01T01:00:00Z", keys=("k1", "k2", "k3", "k4"))
    later = alert("cluster:k1", "critical", "2026-02-01T02:00:00Z", keys=("k1", "k2", "k3", "k4", "k5", "k6"))
    assert alert_identity(grown) != alert_identity(later)
    assert alert_identity(grown) == alert_identity(dict(grown, score=0.5))  # re-raised: same message


def test_sent_alerts_are_bounded_and_skip_what_is_not_an_alert():
    sent = SentAlerts(max_entries=3)
    assert sent.load([b"not json", b"[1]", json.dumps({"no": "id"}).encode()]
                     + [json.dumps(alert(f"key:k{i}:1")).encode() for i in range(5)]) == 5
    assert len(sent) == 3
    assert alert("key:k4:1") in sent and alert("key:k0:1") not in sent


def test_each_alert_sent_reports_how_long_it_waited_and_a_dropped_one_does_not():
    now = [100.0]
    held: list[float] = []
    first = alert(severity="warning")
    outbox = outbox_on(Topic(before=[first]), on_sent=held.append, clock=lambda: now[0])
    outbox.add(b"k1", dict(first))  # already on the topic: dropped, not reported
    now[0] = 100.5
    outbox.add(b"k1", alert(severity="critical"))
    now[0] = 101.25
    run(outbox.send_pending())
    assert held == [0.75]
