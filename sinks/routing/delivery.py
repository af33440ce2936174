"""Alertmanager's v2 API, on every replica: post alerts, create / list / delete silences.

Alertmanager replicas do not share alerts unless they are clustered, and even clustered
they expect every client to post to each of them; so the router calls each URL on its own
and gets an outcome per replica. Errors are data: nothing here raises for a replica
that is down or refuses, and an error text never holds a URL (one may carry basic-auth
credentials) or an exception's message (aiohttp puts the URL in some): replicas are named
by their index in ``DG_ALERTMANAGER_URLS`` and their host.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp

from .errors import RoutesError


def replica_name(index: int, url: str) -> str:
    """``#0 am-0:9093``: the index and host, never the path or credentials.

    >>> replica_name(1, "http://user:pw@alertmanager-1:9093/")
    '#1 alertmanager-1:9093'
    """
    parts = urlsplit(url)
    return f"#{index} {parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True, slots=True)
class ReplicaOutcome:
    """What one replica answered: ``ok``, the HTTP status (None if none came) and a short error."""

    replica: str
    ok: bool
    status: int | None = None
    error: str = ""
    body: object = None


class AlertmanagerClient:
    """One aiohttp session for every replica; call :meth:`close` when done."""

    def __init__(self, urls: list[str], timeout_s: float) -> None:
        if not urls:
            raise RoutesError("no Alertmanager URL configured (DG_ALERTMANAGER_URLS)")
        self.urls = [url.rstrip("/") for url in urls]
        self.names = [replica_name(i, url) for i, url in enumerate(self.urls)]
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def _session_open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(raise_for_status=False, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, index: int, method: str, path: str, body=None) -> ReplicaOutcome:
        session = await self._session_open()
        name = self.names[index]
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        try:
            async with session.request(method, self.urls[index] + path, data=data,
                                       headers={"Content-Type": "application/json"}) as resp:
                text = await resp.text(errors="replace")
                if 200 <= resp.status < 300:
                    try:
                        parsed = json.loads(text) if text else None
                    except ValueError:
                        parsed = None
                    return ReplicaOutcome(name, True, resp.status, "", parsed)
                return ReplicaOutcome(name, False, resp.status, f"HTTP {resp.status}: {text[:200]}")
        except asyncio.TimeoutError:
            return ReplicaOutcome(name, False, None, f"timeout after {self.timeout.total:g}s")
        except aiohttp.ClientError as exc:
            return ReplicaOutcome(name, False, None, f"connection error ({type(exc).__name__})")

    async def _each(self, method: str, path: str, body=None) -> list[ReplicaOutcome]:
        return list(await asyncio.gather(*(self._call(i, method, path, body) for i in range(len(self.urls)))))

    async def post_alerts(self, index: int, alerts: list[dict]) -> ReplicaOutcome:
        """``POST /api/v2/alerts`` to one replica (the router runs one poster per replica)."""
        return await self._call(index, "POST", "/api/v2/alerts", alerts)

    async def create_silence(self, index: int, body: dict) -> str | None:
        """``POST /api/v2/silences`` on one replica: the silence id, or None if it did not take it."""
        outcome = await self._call(index, "POST", "/api/v2/silences", body)
        return outcome.body.get("silenceID") if outcome.ok and isinstance(outcome.body, dict) else None

    async def active_silence_ids(self, index: int) -> set[str] | None:
        """Ids of our silences active on one replica, or None when it cannot be read."""
        query = quote('source="distillguard"')
        outcome = await self._call(index, "GET", f"/api/v2/silences?filter={query}")
        if not outcome.ok or not isinstance(outcome.body, list):
            return None
        return {s["id"] for s in outcome.body if (s.get("status") or {}).get("state") == "active"}

    async def delete_silence(self, index: int, silence_id: str) -> bool:
        """``DELETE /api/v2/silence/{id}`` on one replica; an unknown id counts as done."""
        outcome = await self._call(index, "DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")
        return outcome.ok or outcome.status == 404

    async def ready(self) -> list[ReplicaOutcome]:
        """``GET /-/ready`` on every replica (``distillguard routes check``)."""
        return await self._each("GET", "/-/ready")
