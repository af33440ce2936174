"""The HTTP sender against a local server: retries, Retry-After, timeouts, rejects, redaction."""
from __future__ import annotations

import asyncio
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from receivers import Receiver  # noqa: E402

from aiohttp import web  # noqa: E402

from distillguard.embedded import free_port  # noqa: E402
from distillguard.sinks.routing.delivery import Sender  # noqa: E402
from distillguard.sinks.routing.routes import Delivery  # noqa: E402
from distillguard.sinks.routing.targets import HttpRequest  # noqa: E402

SECRET = "sk-live-0123456789abcdef"


class Scripted(Receiver):
    """Answers from a script: a list of (status, headers, body) per request, then 200."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)

    def handle(self, record):
        status, headers, body = self.script.pop(0) if self.script else (200, {}, "ok")
        return web.Response(status=status, headers=headers, text=body)


def _send(server_url, *, policy, sleeps=None, path="/hook"):
    async def run():
        async def fake_sleep(delay):
            sleeps.append(delay)
        sender = Sender(policy, rng=random.Random(3), sleep=fake_sleep if sleeps is not None else asyncio.sleep,
                        redact=lambda text: text.replace(SECRET, "***"))
        try:
            return await sender.send([HttpRequest("hook", "POST", server_url + path, {}, b"{}")])
        finally:
            await sender.close()
    return asyncio.run(run())


def test_webhook_delivery_retries_5xx_and_429_honouring_retry_after():
    server = Scripted([(500, {}, "boom"), (429, {"Retry-After": "2"}, "slow down"), (503, {}, "")]).start()
    try:
        sleeps: list[float] = []
        outcome = _send(server.url, policy=Delivery(max_attempts=5, backoff_base_s=0.1, backoff_max_s=5,
                                                    jitter=0), sleeps=sleeps)
        assert outcome.ok and outcome.attempts == 4 and outcome.retries == 3
        assert sleeps == [0.1, 2.0, 0.4]  # exponential, but Retry-After wins when longer
        assert len(server.requests) == 4
    finally:
        server.stop()


def test_webhook_delivery_does_not_retry_a_4xx_and_redacts_the_body():
    server = Scripted([(400, {}, f"invalid key {SECRET}")]).start()
    try:
        outcome = _send(server.url, policy=Delivery(max_attempts=5), sleeps=[])
        assert not outcome.ok and outcome.attempts == 1 and outcome.status == 400
        assert SECRET not in outcome.error and "invalid key ***" in outcome.error
    finally:
        server.stop()


def test_webhook_delivery_times_out_then_gives_up_with_a_typed_error(caplog):
    server = Scripted([]).start()
    server.fault("", "hang", 10, hang_s=1.0)
    caplog.set_level(logging.DEBUG)
    try:
        outcome = _send(server.url, policy=Delivery(timeout_s=0.2, max_attempts=3, backoff_base_s=0.01,
                                                    backoff_max_s=0.02), path=f"/hook/{SECRET}")
        assert not outcome.ok and outcome.attempts == 3 and outcome.error == "timeout after 0.2s"
        assert SECRET not in caplog.text and SECRET not in repr(outcome)
    finally:
        server.stop()


def test_webhook_delivery_connection_refused_error_names_no_url():
    port = free_port()  # nothing listens there
    outcome = _send(f"http://127.0.0.1:{port}", policy=Delivery(max_attempts=2, backoff_base_s=0.01),
                    path=f"/services/{SECRET}")
    assert not outcome.ok and outcome.attempts == 2
    assert outcome.error.startswith("connection error (") and SECRET not in outcome.error
    assert str(port) not in outcome.error
