"""Fault tests on real engines: ClickHouse unavailable for a while, a worker killed during the
outage, the broker stopped and restarted mid-stream.

After each fault every event is accounted for (processed, exactly once in ClickHouse and its
rollups), no alert is lost (every alert on the topic is stored) and no key has two incidents.
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition

from distillguard.devtools.demo_traffic import demo_events, iter_encoded
from distillguard.devtools.embedded import EmbeddedBroker

from .conftest import counters_of, health_status, metric, wait_for, wait_rows

FAULT_ENV = {"DG_CLICKHOUSE_MAX_BUFFERED_ROWS": "200", "DG_CLICKHOUSE_RETRY_AFTER_S": "0.5"}


def committed(pipeline) -> int:
    """Records of the input topic the worker group has committed (offsets summed over partitions)."""
    consumer = Consumer({"bootstrap.servers": pipeline.broker.bootstrap, "group.id": pipeline.settings.app_id,
                         "enable.auto.commit": False})
    try:
        parts = consumer.committed([TopicPartition(pipeline.settings.requests_topic, p)
                                    for p in range(pipeline.settings.partitions)], timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in parts)


def assert_alerts_complete(pipeline, worker, timeout: float = 60.0) -> list[dict]:
    """No alert lost (every alert on the topic is in ClickHouse, within ``timeout``), one
    incident per key."""
    alerts = pipeline.alerts()
    sent, stored = {a["alert_id"] for a in alerts}, set()

    def all_stored() -> bool:
        stored.update(a["alert_id"] for a in worker.get("/alerts?limit=1000")["alerts"])
        return sent <= stored

    # Alerts may be stored by a later flush than the rows of the events that raised them:
    # under load that flush came after ``wait_rows``' 2 s of grace (a CI run, 2026-12-06:
    # every event stored, no alert yet). Lost means never stored, not stored late.
    try:
        wait_for(all_stored, "every alert on the topic stored in ClickHouse", timeout)
    except AssertionError:
        raise AssertionError(f"alerts on the topic never stored: {sorted(sent - stored)}") from None
    incidents = Counter(entity for entity, _ in {(a["entity_id"], a["alert_id"]) for a in alerts
                                                 if a["entity_type"] == "key"})
    assert incidents["demo_sweeper"] == 1
    assert all(n == 1 for n in incidents.values()), incidents
    return alerts


def test_clickhouse_outage_backpressure_then_recovery(pipeline, tmp_path):
    events = demo_events(seed=7, users=30, campaign_events=400)
    records = list(iter_encoded(events))
    first, rest = records[:300], records[300:]
    down = tmp_path / "clickhouse-down"
    worker = pipeline.start_worker(DG_CLICKHOUSE_FAULT_FILE=str(down), DG_STALL_AFTER_S="2", **FAULT_ENV)

    pipeline.produce(first)
    wait_rows(worker, len(first))
    wait_for(lambda: committed(pipeline) == len(first), "offsets of the first batch committed")
    assert metric(worker, "distillguard_consumer_partition_stalled") == 0

    down.touch()  # ClickHouse refuses every write from now on
    pipeline.produce(rest)
    wait_for(lambda: metric(worker, "distillguard_sink_backpressure_total") > 0, "back-pressure")
    assert metric(worker, "distillguard_sink_errors_total") > 0
    time.sleep(3.0)  # the worker keeps failing for a while
    seen = counters_of(worker)["events"]  # (503 once the stall is seen: DG_STALL_AFTER_S=2)
    # Back-pressure stopped consumption at the sink's buffer bound (200 rows once a flush has
    # failed, 2 x 200 at most while the first failing write is in flight): the rest waits in
    # Kafka, not in memory; nothing was stored and no offset was committed past the outage.
    assert len(first) < seen <= len(first) + 2 * 200 + 1 < len(records)
    assert metric(worker, "distillguard_sink_buffered_rows") <= 2 * 200
    assert worker.get("/query/tables")["events"] == len(first)
    assert committed(pipeline) == len(first)
    # What pages the team running the workers: partitions with records waiting, not moving.
    wait_for(lambda: metric(worker, "distillguard_consumer_partition_stalled") > 0, "a partition reported stalled")
    status, body = health_status(worker)  # 503: input waits, nothing completes (commits or processing)
    assert status == 503 and any(p["stalled"] for p in body["partitions"].values())

    down.unlink()  # ClickHouse is back
    tables = wait_rows(worker, len(events))
    wait_for(lambda: metric(worker, "distillguard_consumer_partition_stalled") == 0, "no partition stalled")
    assert tables["events"] == len(events) and tables["key_minute_events"] == len(events)
    assert tables["key_hour_events"] == len(events)
    wait_for(lambda: committed(pipeline) == len(events), "every offset committed after the outage")
    counters = counters_of(worker)
    assert counters["processed"] == len(events) and counters["dead_letters"] == 0
    assert_alerts_complete(pipeline, worker)


def test_alerts_page_during_a_clickhouse_outage_and_are_stored_after_it(pipeline, tmp_path):
    """A page does not wait for the analytics store: with ClickHouse refusing every write from
    the start, the sweeper's alert reaches the alerts topic while nothing is stored or
    committed; once ClickHouse is back every event and alert is stored, and no alert was sent
    twice (the flush that finally succeeds has nothing left to send)."""
    events = demo_events(seed=7, users=30, campaign_events=400)
    records = list(iter_encoded(events))
    down = tmp_path / "clickhouse-down"
    down.touch()
    worker = pipeline.start_worker(DG_CLICKHOUSE_FAULT_FILE=str(down), DG_CLICKHOUSE_MAX_BUFFERED_ROWS="100000",
                                   DG_CLICKHOUSE_RETRY_AFTER_S="0.5")
    pipeline.produce(records)
    wait_for(lambda: any(a["entity_id"] == "demo_sweeper" for a in pipeline.alerts(timeout=5)),
             "the sweeper paged while ClickHouse is down", timeout=90)
    assert metric(worker, "distillguard_sink_errors_total") > 0
    assert worker.get("/query/tables")["events"] == 0 and committed(pipeline) == 0

    down.unlink()
    tables = wait_rows(worker, len(events))
    assert tables["events"] == len(events)
    wait_for(lambda: committed(pipeline) == len(events), "every offset committed after the outage")
    alerts = assert_alerts_complete(pipeline, worker)
    assert len({json.dumps(a, sort_keys=True) for a in alerts}) == len(alerts), "an alert sent twice"
    assert metric(worker, "distillguard_alerts_deduplicated_total") == 0


@pytest.mark.parametrize("ended_by", ["SIGKILL", "SIGTERM"])
def test_worker_ended_during_clickhouse_outage_loses_nothing(pipeline, tmp_path, ended_by):
    """A worker killed (a crash) or asked to stop while ClickHouse refuses every write: the
    records since the outage can be neither stored nor acked. Asked to stop, it gives up on
    them after DG_STOP_TIMEOUT_S and exits, instead of waiting for the SIGKILL of its
    orchestrator's grace period (until 2026-12-05). Either way only what was stored is
    committed, and the restarted worker stores every event once and applies it once."""
    events = demo_events(seed=7, users=30, campaign_events=400)
    records = list(iter_encoded(events))
    first, rest = records[:300], records[300:]
    per_key = Counter(e["api_key_id"] for e in events)
    down = tmp_path / "clickhouse-down"
    env = {"DG_CLICKHOUSE_FAULT_FILE": str(down), **FAULT_ENV}
    worker = pipeline.start_worker(DG_STOP_TIMEOUT_S="3", **env)
    pipeline.produce(first)
    wait_rows(worker, len(first))
    wait_for(lambda: committed(pipeline) == len(first), "offsets of the first batch committed")

    down.touch()
    pipeline.produce(rest)
    wait_for(lambda: metric(worker, "distillguard_sink_backpressure_total") > 0, "back-pressure")
    if ended_by == "SIGKILL":
        time.sleep(1.5)  # several failed flushes: states changed since the outage must not be changelogged
        worker.kill()
    else:
        log_path, started = worker.log_path, time.monotonic()
        assert worker.stop(timeout=40.0) == 0  # (-9 if it waited for the SIGKILL after 40 s)
        assert time.monotonic() - started < 20.0 and "records not stored" in log_path.read_text()
    assert committed(pipeline) == len(first)  # nothing committed past what was stored
    down.unlink()

    restarted = pipeline.start_worker(**env)
    tables = wait_rows(restarted, len(events))
    assert tables["events"] == len(events) and tables["key_minute_events"] == len(events)
    # Each key's detector has applied each of its events exactly once.
    for key in ["demo_sweeper", "demo_app_support"] + sorted(k for k in per_key if k.startswith("demo_user_"))[:10]:
        info = restarted.get(f"/query/state?key={key}")["info"]
        assert info is not None and info["events"] == per_key[key], (key, info)
    assert_alerts_complete(pipeline, restarted)


def test_records_the_consumer_skips_are_read_again(pipeline, tmp_path):
    """The consumer jumps over 3 records of a partition (as Faust's fetch loop does when a
    rebalance catches it mid-record): the worker sees the hole, re-reads them, loses nothing."""
    events = demo_events(seed=7, users=30, campaign_events=400)
    records = list(iter_encoded(events))
    first, rest = records[:200], records[200:]
    skip = tmp_path / "skip-records"
    worker = pipeline.start_worker(DG_CONSUMER_SKIP_FAULT_FILE=str(skip))
    pipeline.produce(first)
    wait_rows(worker, len(first))
    skip.touch()
    pipeline.produce(rest)
    tables = wait_rows(worker, len(events))
    assert not skip.exists()  # the jump happened
    assert metric(worker, "distillguard_consumer_holes_total") == 3
    assert tables["events"] == len(events) and tables["key_minute_events"] == len(events)
    counters = counters_of(worker)
    assert counters["processed"] == len(events) and counters["dead_letters"] == 0
    assert_alerts_complete(pipeline, worker)
    wait_for(lambda: committed(pipeline) == len(events), "every offset committed")
    # What /health shows on-call: every partition processed and committed to its end.
    partitions = worker.get("/health")["partitions"]
    assert sorted(partitions) == [str(p) for p in range(pipeline.settings.partitions)]
    assert sum(state["next_offset"] for state in partitions.values()) == len(events)
    for state in partitions.values():
        # (tansu may report a high watermark short of the end: the start of its last batch + 1)
        assert state["committed"] == state["next_offset"] >= state["high_watermark"] and not state["paused"]


def test_broker_stopped_and_restarted_mid_stream(tmp_path):
    """noida-db (it persists: tansu would come back empty) stopped with the worker running."""
    from .conftest import Pipeline

    broker = EmbeddedBroker("noida", data_dir=tmp_path / "noida", log_path=tmp_path / "noida.log").start()
    pipeline = Pipeline(broker, tmp_path)
    try:
        events = demo_events(seed=7, users=30, campaign_events=400)
        records = list(iter_encoded(events))
        first, rest = records[:500], records[500:]
        down = tmp_path / "clickhouse-down"
        # (A table recovery that reads nothing for 10 s is restarted: see DG_RECOVERY_STALL_S.)
        worker = pipeline.start_worker(DG_CLICKHOUSE_FAULT_FILE=str(down), DG_RECOVERY_STALL_S="10")
        pipeline.produce(first[:100])
        wait_rows(worker, 100)
        # Hold ClickHouse back so that the broker goes away with events in flight: processed,
        # buffered, neither acked nor committed.
        down.touch()
        pipeline.produce(first[100:])
        wait_for(lambda: counters_of(worker)["events"] >= 300, "the worker mid-stream")
        assert committed(pipeline) <= 100
        broker.stop()  # SIGTERM, as a rolling restart would
        down.unlink()  # the rows land while the broker is down; the commits cannot
        time.sleep(3.0)
        broker.start()  # same port, same data directory
        pipeline.produce(rest)
        tables = wait_rows(worker, len(events), timeout=120)
        assert tables["events"] == len(events) and tables["key_minute_events"] == len(events)
        counters = counters_of(worker)
        assert counters["dead_letters"] == 0 and counters["processed"] == len(events)
        assert worker.pid is not None and worker._proc.poll() is None  # the same worker, never restarted
        assert_alerts_complete(pipeline, worker)
        try:
            wait_for(lambda: committed(pipeline) == len(events), "every offset committed after the restart")
        except AssertionError as exc:  # say where each partition stands
            raise AssertionError(f"{exc}: {worker.get('/health')}") from None
    finally:
        pipeline.close()
        broker.stop()


def test_a_rebalance_during_clickhouse_outage_does_not_freeze_the_group(pipeline, tmp_path):
    """A second worker joins while ClickHouse refuses every write. The first cannot store, so
    cannot ack, the records of the partitions it must give up, and the whole group waited for
    it: neither worker read a record until ClickHouse was back (measured 2026-12-05: 60 s,
    nothing read). After DG_REVOKE_TIMEOUT_S it exits non-zero (to be restarted); the other
    worker takes every partition, reads from the last commit, and detection goes on."""
    events = demo_events(seed=7, users=30, campaign_events=400)
    records = list(iter_encoded(events))
    first, during = records[:300], records[300:]
    down = tmp_path / "clickhouse-down"
    env = {"DG_CLICKHOUSE_FAULT_FILE": str(down), "DG_CLICKHOUSE_MAX_BUFFERED_ROWS": "100000",
           "DG_CLICKHOUSE_RETRY_AFTER_S": "0.5", "DG_REVOKE_TIMEOUT_S": "3"}
    blocked = pipeline.start_worker(**env)
    pipeline.produce(first)
    wait_rows(blocked, len(first))
    wait_for(lambda: committed(pipeline) == len(first), "offsets of the first batch committed")

    down.touch()
    pipeline.produce(during[:200])
    wait_for(lambda: counters_of(blocked)["events"] == len(first) + 200, "records read during the outage")
    wait_for(lambda: metric(blocked, "distillguard_sink_errors_total") > 0, "a failed flush")
    # A second worker (its own chDB: one process per data dir) makes the group rebalance.
    joined = pipeline.start_worker("data-joined", **env)
    pipeline.produce(during[200:])

    wait_for(lambda: blocked.exit_code is not None, "the blocked worker exited", timeout=60)
    assert blocked.exit_code != 0  # a crash: restart me
    assert "a rebalance waited 3 s (DG_REVOKE_TIMEOUT_S)" in blocked.log_path.read_text()
    assert committed(pipeline) == len(first)  # nothing committed past what was stored
    # The other worker reads every record since the last commit, still during the outage.
    # (>=: a record handed over twice in the rebalances is counted twice, and stored once)
    try:
        wait_for(lambda: counters_of(joined)["events"] >= len(during), "the joined worker read the rest", timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {counters_of(joined)}") from None

    down.unlink()
    tables = wait_rows(joined, len(during))
    assert tables["events"] == len(during)
    wait_for(lambda: committed(pipeline) == len(records), "every offset committed after the outage")
