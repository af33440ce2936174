"""Per-target rate limit: a token bucket with the clock passed in (pure)."""
from __future__ import annotations


class TokenBucket:
    """``per_minute`` tokens a minute, at most ``burst`` saved up.

    A delivery that finds no token is deferred (tried again on the router's next tick), not
    dropped: a chat channel flooded by a campaign of a hundred keys gets them at the agreed pace.
    """

    def __init__(self, per_minute: float, burst: int, now: float) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token is available (0 if one is)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate
