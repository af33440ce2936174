"""The event-loop watcher: what it reports is how late its timer fired, never less than 0."""
from __future__ import annotations

import asyncio
import time

from distillguard.streams.loop_lag import watch_event_loop
from distillguard.streams.metrics import WorkerMetrics


def _run_blocking(block_s: float, observe) -> None:
    async def main():
        watcher = asyncio.ensure_future(watch_event_loop(observe, interval_s=0.01))
        await asyncio.sleep(0.05)
        time.sleep(block_s)  # one callback holding the loop
        await asyncio.sleep(0.05)
        watcher.cancel()
    asyncio.run(main())


def test_a_blocked_loop_is_reported_at_least_as_long_as_it_was_blocked():
    lags: list[float] = []
    _run_blocking(0.25, lags.append)
    assert len(lags) >= 3
    assert max(lags) >= 0.25 - 0.01  # the stall, less the interval it overlapped
    assert min(lags) >= 0.0


def test_a_clock_running_backwards_reports_no_negative_lag():
    ticks = [10.0, 9.0, 9.0, 9.5]
    lags: list[float] = []

    def clock() -> float:
        return ticks.pop(0) if ticks else 9.5

    async def main():
        watcher = asyncio.ensure_future(watch_event_loop(lags.append, interval_s=0.001, clock=clock))
        await asyncio.sleep(0.05)
        watcher.cancel()
    asyncio.run(main())
    assert lags[0] == 0.0  # woke "before" it slept: no negative lag
    assert abs(lags[1] - 0.499) < 1e-9  # asked for 9.001, woke at 9.5


def test_the_worker_histogram_counts_the_stalls_by_their_length():
    metrics = WorkerMetrics()
    _run_blocking(0.3, metrics.event_loop_lag_seconds.observe)
    samples = {s.name + str(s.labels.get("le", "")): s.value
               for family in metrics.registry.collect() if family.name == "distillguard_event_loop_lag_seconds"
               for s in family.samples}
    assert samples["distillguard_event_loop_lag_seconds_count"] >= 3
    # exactly one wake-up came 0.25-0.5 s late (the stall); the others within 0.1 s
    assert samples["distillguard_event_loop_lag_seconds_bucket0.5"] - samples[
        "distillguard_event_loop_lag_seconds_bucket0.25"] == 1
