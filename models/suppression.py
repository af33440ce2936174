"""Entities on-call marked as false positives: a bounded set with expiry (pure, clock passed in).

The detector workers consult it before emitting an alert, so a known false positive does
not page again for ``ttl_ms`` after the feedback's own timestamp (re-reading the feedback
topic after a restart therefore gives the same expiries). Bounded: past ``max_entities``
the entry that expires first is dropped.

>>> s = SuppressionList(ttl_ms=1000, max_entities=2)
>>> s.add("key", "k1", ts_ms=0)
True
>>> s.suppressed("key", "k1", now_ms=999), s.suppressed("key", "k1", now_ms=1000)
(True, False)
"""
from __future__ import annotations

import heapq

DEFAULT_TTL_MS = 30 * 86_400_000


class SuppressionList:
    """``(entity_type, entity_id)`` -> suppressed-until (ms)."""

    def __init__(self, ttl_ms: int = DEFAULT_TTL_MS, max_entities: int = 100_000) -> None:
        self.ttl_ms = ttl_ms
        self.max_entities = max_entities
        self._until: dict[tuple[str, str], int] = {}
        self._expiry: list[tuple[int, tuple[str, str]]] = []  # heap, may hold stale entries

    def __len__(self) -> int:
        return len(self._until)

    def add(self, entity_type: str, entity_id: str, *, ts_ms: int) -> bool:
        """Suppress from ``ts_ms`` for the TTL; False if an existing suppression already lasts longer."""
        key, until = (entity_type, entity_id), ts_ms + self.ttl_ms
        if self._until.get(key, -1) >= until:
            return False
        self._until[key] = until
        heapq.heappush(self._expiry, (until, key))
        while len(self._until) > self.max_entities:
            self._pop_first()
        return True

    def lift(self, entity_type: str, entity_id: str) -> None:
        """End a suppression early (stale heap entries are skipped later)."""
        self._until.pop((entity_type, entity_id), None)

    def suppressed(self, entity_type: str, entity_id: str, *, now_ms: int) -> bool:
        # A plain dict lookup: safe while the feedback thread adds entries.
        return self._until.get((entity_type, entity_id), -1) > now_ms

    def expire(self, now_ms: int) -> int:
        """Drop suppressions that have ended; returns how many."""
        dropped = 0
        while self._expiry and self._expiry[0][0] <= now_ms:
            if self._pop_first():
                dropped += 1
        return dropped

    def _pop_first(self) -> bool:
        until, key = heapq.heappop(self._expiry)
        if self._until.get(key) == until:
            del self._until[key]
            return True
        return False
