"""SIGTERM (a rolling restart, ``docker compose stop``) makes a worker store, ack and commit
what it processed and exit, instead of waiting to be killed.

Faust ends the app's timers before it waits for its agents' records to be acked, and this
worker acks only in its checkpoint's flush, which a timer runs: a worker stopped within a
flush interval of its last records waited until its SIGKILL (``faust_compat.
flush_while_waiting_empty`` flushes beside the wait)."""
from __future__ import annotations

from distillguard.devtools.demo_traffic import demo_events, iter_encoded

from .conftest import counters_of, wait_rows
from .test_faults import committed

# No flush on the timer's clock, nor by the sink's row age: only the stop can store and ack.
NO_FLUSH_WHILE_RUNNING = {"DG_FLUSH_INTERVAL_S": "3600", "DG_CLICKHOUSE_BATCH_AGE_S": "3600"}


def test_sigterm_stores_acks_and_commits_the_last_records_then_exits(pipeline):
    events = demo_events(seed=11, users=20, campaign_events=200)
    records = list(iter_encoded(events))
    worker = pipeline.start_worker(**NO_FLUSH_WHILE_RUNNING)
    pipeline.produce(records)
    pipeline.wait_processed(worker, len(records))
    assert committed(pipeline) == 0  # processed, none stored or acked yet

    # Faust's stop would otherwise wait for the acks until this timeout's SIGKILL (-9)
    assert worker.stop(timeout=60.0) == 0
    assert committed(pipeline) == len(records)

    restarted = pipeline.start_worker()
    tables = wait_rows(restarted, len(events))
    assert tables["events"] == len(events)  # stored at the stop, once
    assert counters_of(restarted)["events"] == 0  # nothing left to read again
