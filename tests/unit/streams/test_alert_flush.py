"""When a worker flushes because of alerts: only when a queued alert's send failed. Alerts
just raised are sent by their own task, not by a flush (each flush is a ClickHouse insert)."""
from __future__ import annotations

import asyncio

import pytest

ALERT = {"alert_id": "key:k1:1", "ts": "2026-02-01T00:00:00.000Z", "entity_type": "key", "entity_id": "k1",
         "api_key_ids": ["k1"], "score": 0.9, "severity": "critical", "reasons": [], "events_seen": 50,
         "detector": "test"}


@pytest.fixture
def worker(offline_worker):
    offline_worker.outbox._read_sent = lambda: []  # the alerts topic's tail: empty (no broker here)
    return offline_worker


def _raise_and_send(worker, send) -> tuple[bool, bool]:
    """Queue an alert as a step does and let its own task send it, ``send`` standing for the
    alerts topic: whether the worker wanted a flush for it right after the step, and once the
    send had run."""
    worker.alerts.send = send

    async def scenario() -> tuple[bool, bool]:
        worker.app.loop = asyncio.get_running_loop()
        worker.outbox.add(b"k1", dict(ALERT))
        worker.send_alerts_soon()
        after_step = worker.alerts_stuck()  # the send task has not run yet
        await worker._alert_sender
        return after_step, worker.alerts_stuck()
    return asyncio.run(scenario())


def test_an_alert_just_raised_does_not_flush(worker):
    sent = []

    async def send(key, value):
        sent.append(value)
    assert _raise_and_send(worker, send) == (False, False)
    assert len(sent) == 1 and b"key:k1:1" in sent[0] and len(worker.outbox) == 0


def test_an_alert_whose_send_failed_flushes_for_the_retry(worker):
    async def broker_away(key, value):
        raise ConnectionError("broker away")
    assert _raise_and_send(worker, broker_away) == (False, True)
    assert len(worker.outbox) == 1  # kept for the flush, which sends it before any ack


def test_nothing_queued_no_flush(worker):
    assert not worker.alerts_stuck()
