"""Whether a key's requests leave time to read the answers they get."""
from __future__ import annotations

from .base import EWShare


def reply_ready(ts_ms: float, latency_ms: int, output_tokens: int, read_ms_per_token: float) -> float:
    """When a person could send the key's next request having read this one's answer: the
    request's time, its latency (the answer is complete) and ``read_ms_per_token`` for each
    output token (unknown usage, -1, reads as none)."""
    return ts_ms + latency_ms + max(0, output_tokens) * read_ms_per_token


class ReadingPace(EWShare):
    """The share of a key's requests sent before its previous answer could have been read.

    A person sends the next request after the answer to the last one arrived and was read; a
    script sends it when it likes, often while answers are still streaming. A request is
    *unread* when it came before the key's previous request's ``reply_ready``: its time,
    latency and ``read_ms_per_token`` per output token (5 ms: 12,000 tokens a minute, several
    times the fastest skim). Gateway time and gateway-measured latency are facts, not client
    claims, and this pace holds whatever the timing's regularity: a harvest that jitters its
    gaps to pass ``InterArrivalTiming`` but collects a 1,800-token answer every 5 s is no
    reader. Slowing down to a reader's pace is what the signal costs an attacker: per key,
    a reader's throughput. ``models.pipeline`` counts it as automation in the harvest test
    and ``ConversationClaims`` does not count an unread follow-up carrying a new task as a
    turn.

    On fabricated-conversations-c and dev-s1, people's keys (casual, multi-turn, resellers)
    send 0-9 % of their requests unread; developers' jobs 52-95 %, small evaluations 12-13 % in
    the median and up to 98 %, and sweeps dressed as conversations 55-100 %.

    ``score_one`` is 1.0 for an unread request, else 0.0 (the key's first: nothing to read);
    ``level`` is its exponentially weighted share (``EWShare``), seeded by the key's second
    request (the first with a previous answer). An out-of-order event is unread and dates ``ready`` itself.

    Parameters
    ----------
    alpha
        Weight of each new request in ``level``.
    read_ms_per_token
        The least time a reader needs per output token of the previous answer.

    Examples
    --------
    >>> script, person = ReadingPace(alpha=0.1), ReadingPace(alpha=0.1)
    >>> for i in range(40):  # a 1,500-token answer every 6 s (latency 20 s: requests overlap)
    ...     script.learn_one({"ts_ms": i * 6_000, "latency_ms": 20_000, "output_tokens": 1500})
    ...     person.learn_one({"ts_ms": i * 90_000, "latency_ms": 20_000, "output_tokens": 1500})
    >>> round(script.level, 2), round(person.level, 2)
    (1.0, 0.0)
    >>> person.score_one({"ts_ms": 39 * 90_000 + 30_000}), person.score_one({"ts_ms": 39 * 90_000 + 25_000})
    (0.0, 1.0)
    """

    state_fields = ("n", "ready", "share")

    def __init__(self, alpha: float = 0.05, read_ms_per_token: float = 5.0) -> None:
        super().__init__(alpha)
        self.read_ms_per_token = read_ms_per_token
        self.ready = 0.0  # when the key's previous answer could have been read (ms)

    def score_one(self, x: dict) -> float:
        return 1.0 if self.n and x.get("ts_ms", 0) < self.ready else 0.0

    def learn_one(self, x: dict) -> None:
        unread = self.score_one(x)
        # (seeded by the second request, the first that had an answer to read)
        self.share = unread if self.n <= 1 else (1.0 - self.alpha) * self.share + self.alpha * unread
        self.ready = reply_ready(x.get("ts_ms", 0), x.get("latency_ms", 0), x.get("output_tokens", -1),
                                 self.read_ms_per_token)
        self.n += 1
