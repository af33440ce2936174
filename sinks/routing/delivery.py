"""Send a target's requests with timeouts, retries, exponential backoff and jitter.

Errors are data: :meth:`Sender.send` never raises for a delivery problem, it returns a
:class:`DeliveryOutcome` saying what happened. Retried: timeouts, connection errors, 408,
425, 429 and 5xx (``Retry-After`` is honoured up to the backoff cap). Not retried: other
4xx, which mean the request or its credentials are wrong and will not get better.

Error texts never include a URL or an exception's message (aiohttp puts the URL in some,
and a Slack webhook URL is a credential); response bodies are passed through ``redact``.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Callable

import aiohttp

from .routes import Delivery
from .targets import HttpRequest

RETRY_STATUSES = frozenset({408, 425, 429})


def classify(status: int) -> str:
    """``ok``, ``retry`` or ``reject`` for an HTTP status."""
    if 200 <= status < 300:
        return "ok"
    if status in RETRY_STATUSES or status >= 500:
        return "retry"
    return "reject"


def backoff_delay(attempt: int, policy: Delivery, rng: random.Random, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry).

    ``base * 2**(attempt-1)`` capped at ``backoff_max_s``; the ``jitter`` share of it is drawn
    at random so that routers restarted together do not retry in lockstep.
    """
    delay = min(policy.backoff_max_s, policy.backoff_base_s * (2 ** (attempt - 1)))
    delay = delay * (1 - policy.jitter) + rng.uniform(0, delay * policy.jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.backoff_max_s))
    return delay


def backoff_schedule(policy: Delivery, rng: random.Random) -> list[float]:
    """Every delay a delivery that always fails would wait (``max_attempts - 1`` of them)."""
    return [backoff_delay(n, policy, rng) for n in range(1, policy.max_attempts)]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    target: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str = ""
    latency_s: float = 0.0

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Sender:
    """One aiohttp session for all targets; call :meth:`close` when done."""

    def __init__(self, policy: Delivery, *, rng: random.Random | None = None,
                 sleep: Callable[[float], object] = asyncio.sleep,
                 redact: Callable[[str], str] = lambda text: text) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.redact = redact
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(raise_for_status=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, requests: list[HttpRequest], timeout_s: float | None = None) -> DeliveryOutcome:
        """Send the requests in order, each with retries; stops at the first that fails for good."""
        started = time.perf_counter()
        attempts, status, target = 0, None, requests[0].target if requests else ""
        for request in requests:
            ok, tries, status, error = await self._send_one(request, timeout_s or self.policy.timeout_s)
            attempts += tries
            if not ok:
                return DeliveryOutcome(target, False, attempts, status, error, time.perf_counter() - started)
        return DeliveryOutcome(target, True, attempts, status, "", time.perf_counter() - started)

    async def _send_one(self, request: HttpRequest, timeout_s: float) -> tuple[bool, int, int | None, str]:
        session = await self.session()
        status, error = None, ""
        for attempt in range(1, self.policy.max_attempts + 1):
            retry_after = None
            try:
                async with session.request(request.method, request.url, data=request.body, headers=request.headers,
                                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                    status = resp.status
                    text = await resp.text(errors="replace")
                    verdict = classify(status)
                    if verdict == "ok":
                        return True, attempt, status, ""
                    error = f"HTTP {status}: {self.redact(text[:200])}"
                    if verdict == "reject":
                        return False, attempt, status, error
                    retry_after = _retry_after(resp.headers)
            except asyncio.TimeoutError:
                status, error = None, f"timeout after {timeout_s:g}s"
            except aiohttp.ClientError as exc:
                status, error = None, f"connection error ({type(exc).__name__})"
            if attempt < self.policy.max_attempts:
                await self.sleep(backoff_delay(attempt, self.policy, self.rng, retry_after))
        return False, self.policy.max_attempts, status, error
