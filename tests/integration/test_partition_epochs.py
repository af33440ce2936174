"""Offsets that go backwards (#17, finding 2): a broker that comes back empty is a new log.

The embedded tansu broker keeps its logs in memory: restarted, it has no topics, and the
input's offsets start again at 0, below everything the sink stored. Before input epochs the
worker took those records for re-reads: the sink's watermark and each key's last offset
dropped them (12,000 of 18,000 in the fault run) and /health stayed "ok". Now each is
compared with the record stored at its offset, found different, and processed in a new epoch.
"""
from __future__ import annotations

import pytest

from distillguard.devtools.demo_traffic import demo_events, iter_encoded
from distillguard.devtools.embedded import EmbeddedBroker
from distillguard.streams.topics import ensure_topics

from .conftest import Pipeline, health_status, metric, wait_for, wait_rows


# A worker kept running through the restart reads some of the new log at its old fetch
# position before it can tell (nothing went backwards yet): those are stored under the old
# epoch and skipped when the new epoch reads the log from its start (carried), and they are
# later in event time than the records before them, which then arrive late for their keys
# (stored and counted, not learned: DG_ALLOWED_LATENESS_S). The rejoin after the restart can
# also restore key state from the changelog, older than the rows in the sink's buffer: the
# records are applied again and the sink keeps one copy (it used to insert both: 1-66 rows).
@pytest.mark.parametrize("worker_restarted", [True, False], ids=["worker-restarted", "worker-running"])
def test_events_after_the_broker_comes_back_empty_are_all_stored(tmp_path, worker_restarted):
    broker = EmbeddedBroker("tansu", log_path=tmp_path / "tansu.log").start()
    pipeline = Pipeline(broker, tmp_path)
    try:
        events = demo_events(seed=7, users=30, campaign_events=400)
        records = list(iter_encoded(events))
        before, after = records[:600], records[600:]
        worker = pipeline.start_worker(DG_RECOVERY_STALL_S="10", DG_EPOCH_CHECK_INTERVAL_S="2")
        pipeline.produce(before)
        wait_rows(worker, len(before))
        if worker_restarted:
            worker.stop()
        broker.stop()
        broker.start()  # same port, memory storage: no topics, no offsets, no groups
        ensure_topics(pipeline.settings)
        if worker_restarted:
            worker = pipeline.start_worker(DG_RECOVERY_STALL_S="10", DG_EPOCH_CHECK_INTERVAL_S="2")
        pipeline.produce(after)  # offsets 0.. again, every partition
        try:
            tables = wait_rows(worker, len(records), timeout=150)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; metrics: epochs {metric(worker, 'distillguard_partition_epochs_total')}, "
                                 f"duplicates {metric(worker, 'distillguard_events_duplicate_total')}") from None
        assert tables["events"] == len(records) and tables["key_minute_events"] == len(records)
        # every partition of the new log was recognised as a new epoch, each event processed once
        assert metric(worker, "distillguard_partition_epochs_total") == pipeline.settings.partitions
        status, body = health_status(worker)
        counters = body["counters"]
        if worker_restarted:
            assert counters["processed"] == len(after)
            # only the record that began each epoch came twice (its log was read back from the start)
            assert counters["duplicates"] == counters["events"] - counters["processed"] == pipeline.settings.partitions
        else:  # every event applied, some twice after a rollback of their key's state (see above)
            assert counters["processed"] >= len(records)
        assert sorted(body["epochs"]) == [str(p) for p in range(pipeline.settings.partitions)]
        assert all(e["epoch"] == 1 and e["previous_stored"] >= 0 for e in body["epochs"].values())
        wait_for(lambda: health_status(worker)[0] == 200, "/health ok after the new epoch", timeout=30)
        if not worker_restarted:
            # No key's detector counted an event twice across both logs; what one did not learn
            # arrived late (stored, counted as late).
            per_key: dict[str, int] = {}
            for event in events:
                per_key[event["api_key_id"]] = per_key.get(event["api_key_id"], 0) + 1
            learned = {key: worker.get(f"/query/state?key={key}")["info"]["events"] for key in per_key}
            twice = {key: (learned[key], per_key[key]) for key in per_key if learned[key] > per_key[key]}
            assert not twice, f"keys that learned more events than they have (learned, sent): {twice}"
            assert sum(per_key.values()) - sum(learned.values()) <= counters["late"], (learned, per_key, counters)
    finally:
        pipeline.close()
        broker.stop()


@pytest.mark.parametrize("setting, expected", [
    ({"DG_STALL_AFTER_S": "3", "DG_SINK_FAILING_UNHEALTHY_S": "600"}, "commits stalled"),
    ({"DG_STALL_AFTER_S": "600", "DG_SINK_FAILING_UNHEALTHY_S": "3"}, "sink failing"),
])
def test_health_fails_while_commits_are_stuck_with_input_waiting(pipeline, tmp_path, setting, expected):
    """ClickHouse refuses every write: events are scored but never acknowledged, so commits
    stop while the input keeps coming (what a poison record did). /health used to say "ok"."""
    records = list(iter_encoded(demo_events(seed=7, users=30, campaign_events=400)))
    first, rest = records[:200], records[200:]
    down = tmp_path / "clickhouse-down"
    worker = pipeline.start_worker(DG_CLICKHOUSE_FAULT_FILE=str(down), **setting)
    pipeline.produce(first)
    wait_rows(worker, len(first))
    assert health_status(worker)[0] == 200
    down.touch()
    pipeline.produce(rest)
    status, body = wait_for(lambda: (lambda h: h if h[0] == 503 else None)(health_status(worker)), "/health 503")
    assert body["status"] == expected
    if expected == "commits stalled":
        assert body["commit_stalled"] and metric(worker, "distillguard_consumer_commit_stalled") >= 1
    else:
        assert body["sink_failing_s"] >= 3
        wait_for(lambda: metric(worker, "distillguard_sink_failing_seconds") >= 3, "the sink-failing gauge")
    down.unlink()
    wait_rows(worker, len(records))
    wait_for(lambda: health_status(worker)[0] == 200, "/health ok once ClickHouse takes writes again", timeout=60)
