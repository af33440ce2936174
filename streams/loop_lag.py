"""How long the worker's event loop was blocked: what delays every record, alert and commit
behind it.

One asyncio loop runs the agents, the flush's hand-offs, the web pages and Faust's own
consumer: any callback that holds it (a long step over a large envelope, a table write, a
page render) delays every event queued behind it, and the end-to-end latency's tail is made of
such stalls. The watcher sleeps a short interval and records how much later than asked it woke
up (``distillguard_event_loop_lag_seconds``): a few milliseconds on an idle loop, the length
of the longest callback in the interval otherwise. Ten wake-ups a second cost nothing next to
the events (a timer handle each).

>>> import asyncio, time
>>> lags = []
>>> async def blocked_once():
...     watcher = asyncio.ensure_future(watch_event_loop(lags.append, interval_s=0.01))
...     await asyncio.sleep(0.03)
...     time.sleep(0.2)  # a callback that holds the loop
...     await asyncio.sleep(0.03)
...     watcher.cancel()
>>> asyncio.run(blocked_once())
>>> max(lags) >= 0.15
True
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Short enough that a stall of 100 ms shows at its length, long enough to cost nothing.
LOOP_LAG_INTERVAL_S = 0.1


async def watch_event_loop(observe: Callable[[float], None], interval_s: float = LOOP_LAG_INTERVAL_S,
                           clock: Callable[[], float] = time.monotonic) -> None:
    """Forever (until cancelled): sleep ``interval_s`` and ``observe`` the seconds the wake-up
    came late (never negative)."""
    while True:
        asked = clock() + interval_s
        await asyncio.sleep(interval_s)
        observe(max(0.0, clock() - asked))
