#!/usr/bin/env python3
"""End to end on the embedded broker: producer -> worker(s) -> alerts + chDB. Not a test.

    python benchmarks/pipeline.py                        # all phases
    python benchmarks/pipeline.py --phase throughput --events 30000
    python benchmarks/pipeline.py --phase latency --rate 600 --seconds 40
    python benchmarks/pipeline.py --phase scaleout --events 30000
    python benchmarks/pipeline.py --phase clickhouse --rows 200000
    python benchmarks/pipeline.py --phase packed --events 20000 --base 55718be
    python benchmarks/pipeline.py --phase latency-settings --setting defaults --setting DG_FLUSH_INTERVAL_S=1 \\
        --rate 3500 --seconds 30 --markdown benchmarks/results/latency-flush-interval.md

Phases:

* ``throughput``: the first N events of the dev stream produced as fast as possible into
  one worker; sustained events/s until the worker has processed and stored them all.
* ``latency``: synthetic traffic (ordinary users and many sweeping keys, each of which
  alerts once it has shown enough) produced at a fixed offered rate with event time = wall
  clock; event->alert latency is the time an alert is read from ``distill.alerts`` minus
  the event time of the event that raised it (p50/p99), and the consumer lag (events
  produced but not yet processed) is sampled every 0.5 s.
* ``scaleout``: the throughput phase with two worker processes in one consumer group
  (partitions split between them); compared with one worker.
* ``clickhouse``: feature rows through the sink into a fresh embedded chDB (rows/s).
* ``packed``: side by side in one run (issue #20 item 2): 1 worker reading ``llm.requests``
  directly, 1 worker behind ``distillguard packer`` (DG_READ_PACKED), 2 workers behind the
  packer, and the latency phase behind the packer at ``--load`` (60 %) of the rate one packed
  worker reaches on the latency traffic itself (measured first, as a throughput run); writes
  ``--markdown`` (benchmarks/results/worker-packed.md) beside the JSON.
  With ``--base REV`` (issue #20's targets are ratios against main when it began, 55718be) one
  worker of that revision runs first and last through the same harness, for the ratios.

* ``packer``: the packer alone on a backlog of ``--events`` (whether it limits the workers).
* ``latency-settings``: the packed latency phase once per ``--setting DG_A=1,DG_B=2`` variant
  (``defaults`` for none; given to the worker and the packer alike), the variants taking turns
  in each of ``--rounds`` rounds; writes ``--markdown`` beside the JSON. ``packer-wait`` is the
  same over ``--packer-wait`` values of ``DG_PACKER_MAX_WAIT_MS``. Every latency run reports
  how late the worker's event loop woke (``distillguard_event_loop_lag_seconds``).

``--packed`` runs the throughput, scaleout and latency phases behind the packer.

Writes ``benchmarks/results/pipeline.json`` (phases merged into what is already there).
Numbers depend on the machine and on what else runs on it: the JSON records both.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from distillguard.devtools.demo_traffic import _ASKS, _CONCEPTS, _ELICIT, _SUBJECTS, _event, demo_events
from distillguard.devtools.embedded import EmbeddedBroker, free_port
from distillguard.devtools.processes import WorkerProcess
from distillguard.streams.settings import WorkerSettings
from distillguard.streams.topics import ensure_topics
from replay_speed import checkout, remove  # (benchmarks/: run as a script, its folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "streams" / "dev-s1" / "events.jsonl.gz"
RESULTS = ROOT / "benchmarks" / "results" / "pipeline.json"
WORK = ROOT / "var" / "bench-pipeline"


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                     "enable.idempotence": True})


def _produce(producer: Producer, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce("llm.requests", key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


def _dev_records(n: int) -> list[tuple[bytes, bytes]]:
    records = []
    with gzip.open(DEV, "rb") as fh:
        for line in fh:
            records.append((json.loads(line)["api_key_id"].encode(), line.rstrip(b"\n")))
            if len(records) >= n:
                break
    return records


def _health(worker: WorkerProcess) -> dict:
    """/health's body, also when it answers 503 (a loaded machine can stall a partition past
    DG_STALL_AFTER_S): the counters are in it either way."""
    try:
        return worker.get("/health")
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        return json.loads(exc.read())


def _processed(workers: list[WorkerProcess]) -> int:
    return sum(_health(w)["counters"]["events"] for w in workers)


def _stored(workers: list[WorkerProcess]) -> int:
    return sum(w.get("/query/tables")["events"] for w in workers)


def _stat_cpu_seconds(pid: int) -> float:
    """User + system CPU process ``pid`` has used (Linux /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(worker: WorkerProcess) -> float:
    """User + system CPU the worker process has used: what an event costs, whatever else runs
    on the machine (wall-clock rates depend on that)."""
    return _stat_cpu_seconds(worker._proc.pid)


def _pid_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of process ``pid`` (0.0 when it is gone or unknown)."""
    try:
        return _stat_cpu_seconds(pid)
    except (OSError, TypeError):
        return 0.0


def _machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle, not waiting on I/O):
    over a phase, divided by its wall time, how many cores were in use, by anything."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


PACKED_ENV = {"DG_READ_PACKED": "true"}


def _start(broker, work: Path, n_workers: int, packed: bool, python_path: Path | None = None,
           settings_env: dict | None = None) -> tuple[list[WorkerProcess], WorkerProcess | None]:
    """Worker processes (and the packer in front of them when ``packed``), ready. ``python_path``:
    the workers run an older tree's ``distillguard`` (``--base``), imported from there, in ``work``.
    ``settings_env``: DG_* settings given to the workers and the packer alike (each reads its own)."""
    ensure_topics(WorkerSettings(kafka_bootstrap=broker.bootstrap, read_packed=packed))
    env = {**(PACKED_ENV if packed else {}), **(settings_env or {})}
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    # One chDB directory per worker process (chDB is one process per directory); in
    # production they share a ClickHouse server.
    workers = [WorkerProcess(broker.bootstrap, work / f"data-{i}", env=dict(env),
                             cwd=work if python_path is not None else None).start() for i in range(n_workers)]
    packer = _start_packer(broker, work, settings_env) if packed else None
    return workers, packer


def _start_packer(broker, work: Path, settings_env: dict | None = None) -> WorkerProcess:
    """``distillguard packer`` in front of the workers, ready (its own web port for /health)."""
    port = free_port()
    return WorkerProcess(broker.bootstrap, work / "packer", env={**(settings_env or {}), "DG_PACKER_WEB_PORT": str(port)},
                         web_port=port, command=("packer",)).start()


def run_throughput(n_events: int, n_workers: int, broker_kind: str, packed: bool = False,
                   python_path: Path | None = None, records: list[tuple[bytes, bytes]] | None = None) -> dict:
    """The first ``n_events`` of dev-s1, or ``records`` ((key, value) pairs) when given."""
    work = WORK / f"throughput-{n_workers}{'-packed' if packed else ''}{'-base' if python_path else ''}"
    shutil.rmtree(work, ignore_errors=True)
    records = records if records is not None else _dev_records(n_events)
    with EmbeddedBroker(broker_kind, data_dir=work / "broker", log_path=work / "broker.log") as broker:
        workers, packer = _start(broker, work, n_workers, packed, python_path)
        try:
            time.sleep(3.0 * n_workers + (3.0 if packed else 0))  # let the groups settle their assignments
            producer = _producer(broker.bootstrap)
            cpu_before = [_cpu_seconds(w) for w in workers]
            packer_before = _cpu_seconds(packer) if packer else 0.0
            broker_before, machine_before = _pid_cpu_seconds(broker.pid), _machine_busy_seconds()
            own_before = sum(os.times()[:2])  # this process: it produces the events
            started = time.monotonic()
            for key, value in records:
                _produce(producer, key, value)
            producer.flush(60)
            produced_s = time.monotonic() - started
            # Until every event is stored (rows in ClickHouse), not only stepped: a worker can
            # step faster than it flushes, and a flush is what acks, commits and sends alerts.
            while _processed(workers) < len(records):
                time.sleep(0.2)
            while _stored(workers) < len(records):  # (a query of every table: not polled sooner)
                time.sleep(0.5)
            processed_s = time.monotonic() - started
            cpu_each = [_cpu_seconds(w) - before for w, before in zip(workers, cpu_before)]
            cpu_s = sum(cpu_each)
            packer_cpu_s = _cpu_seconds(packer) - packer_before if packer else None
            broker_cpu_s = _pid_cpu_seconds(broker.pid) - broker_before
            machine_busy_s = _machine_busy_seconds() - machine_before
            own_cpu_s = sum(os.times()[:2]) - own_before
            time.sleep(2.0)
            tables = [w.get("/query/tables") for w in workers]
            shares = [_health(w)["counters"]["events"] for w in workers]
        finally:
            for w in workers + ([packer] if packer else []):
                w.stop()
    packer_cost = {} if packer_cpu_s is None else {
        "packer_cpu_seconds": round(packer_cpu_s, 1),
        "packer_cpu_ms_per_1k_events": round(1e6 * packer_cpu_s / len(records))}
    return {"workers": n_workers, "broker": broker_kind, "packed": packed, **packer_cost, "events": len(records),
            "produce_seconds": round(produced_s, 2), "process_seconds": round(processed_s, 2),
            "events_per_second": round(len(records) / processed_s), "events_per_worker": shares,
            "worker_cpu_seconds": round(cpu_s, 1), "worker_cpu_ms_per_1k_events": round(1e6 * cpu_s / len(records)),
            # each worker's share: the one that owns distill.links also runs the cluster detector
            "worker_cpu_seconds_each": [round(c, 1) for c in cpu_each],
            "worker_busy_share_each": [round(c / processed_s, 2) for c in cpu_each],
            "clickhouse_rows": sum(t["events"] for t in tables), "alert_rows": sum(t["alerts"] for t in tables),
            # Where the machine's cores went meanwhile: the workers, the broker's own process, the
            # benchmark's producer (this process), and every core busy with anything.
            "broker_cpu_seconds": round(broker_cpu_s, 1), "producer_cpu_seconds": round(own_cpu_s, 1),
            "machine_busy_cores": round(machine_busy_s / processed_s, 2), "cores": os.cpu_count()}


def _latency_traffic(rate: float, seconds: float, seed: int = 11) -> list[dict]:
    """Ordinary users plus sweeping keys, in a random interleaving, ~rate*seconds events."""
    rng = random.Random(seed)
    total = int(rate * seconds)
    benign = demo_events(seed=seed, users=max(50, total // 40), campaign_events=0)
    sweep_keys = max(10, total // 160)  # each sweeps ~80 events: alerts after 50, escalates later
    sweeps = []
    for k in range(sweep_keys):
        for _ in range(80):
            prompt = rng.choice(_ASKS).format(s=rng.choice(_SUBJECTS), c=rng.choice(_CONCEPTS))
            tail = rng.choice(_ELICIT[:3])
            sweeps.append(_event(rng, 0, f"bench_sweeper_{k:04d}", f"bench_acct_{k:04d}", f"{prompt}\n\n{tail}",
                                 conv=None, turn=0, ua="python-requests/2.32.3", ip=f"45.{k % 250}.10.20",
                                 asn=20473, country="US", params={"max_tokens": 32000, "temperature": 0.0},
                                 created="2026-01-30T12:00:00Z", fingerprint=f"pf_bench_{k}", tier="tier1"))
    events = benign[: max(0, total - len(sweeps))] + sweeps
    rng.shuffle(events)
    for i, e in enumerate(events):
        e["event_id"] = f"bench_{i:08d}"  # unique even where the synthetic text repeats
    return events[:total]


def _latency_records(rate: float, seconds: float) -> list[tuple[bytes, bytes]]:
    """The latency phase's traffic at ``rate`` for ``seconds`` as (key, value) pairs, stamped as
    the latency phase stamps them (``rate`` a second, the last one now): for measuring the rate
    one worker sustains on it."""
    start = time.time() - seconds
    return [(e["api_key_id"].encode(), _stamp(e, start + i / rate))
            for i, e in enumerate(_latency_traffic(rate, seconds))]


def _warm_up_traffic(events: int = 200) -> list[dict]:
    """Ordinary users' events (no alert) sent before the timed phase, until the worker has
    processed them all: the pipeline is up end to end when the measurement starts."""
    warm = demo_events(seed=97, users=20, campaign_events=0)[:events]
    for i, e in enumerate(warm):
        e["api_key_id"], e["event_id"] = f"bench_warm_{e['api_key_id']}", f"bench_warm_{i:06d}"
    return warm


def _stamp(event: dict, now: float) -> bytes:
    event["ts"] = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps(event, separators=(",", ":")).encode()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_latency(rate: float, seconds: float, broker_kind: str, packed: bool = False,
                settings_env: dict | None = None) -> dict:
    work = WORK / f"latency{'-packed' if packed else ''}"
    shutil.rmtree(work, ignore_errors=True)
    events = _latency_traffic(rate, seconds)
    latencies: list[float] = []
    lag_samples: list[int] = []
    stop = threading.Event()
    with EmbeddedBroker(broker_kind, data_dir=work / "broker", log_path=work / "broker.log") as broker:
        (worker,), packer = _start(broker, work, 1, packed, settings_env=settings_env)
        # fetch.wait.max.ms: when an alert is on distill.alerts, not this reader's own fetch wait
        # (tansu holds a fetch for all of it: librdkafka's 500 ms default added up to 0.5 s).
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"bench-{os.getpid()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.wait.max.ms": 10})
        # Assigned, not subscribed: no group rebalance to wait for (and Tansu's group
        # coordinator is slow to hand out partitions to a new member).
        consumer.assign([TopicPartition("distill.alerts", p, 0) for p in range(WorkerSettings().partitions)])

        def read_alerts() -> None:
            while not stop.is_set():
                msg = consumer.poll(0.1)
                if msg is None or msg.error():
                    continue
                received = time.time()
                alert = json.loads(msg.value())
                if alert.get("entity_type") != "key" or str(alert.get("entity_id")).startswith("bench_warm_"):
                    continue
                raised_at = datetime.fromisoformat(alert["ts"].replace("Z", "+00:00")).timestamp()
                latencies.append(received - raised_at)

        reader = threading.Thread(target=read_alerts, daemon=True)
        try:
            time.sleep(3.0)
            producer = _producer(broker.bootstrap)
            # Offered load starts once events move end to end: the packer's consumer joins its
            # group a second or two after it starts, and the first 2 s of offered events
            # (~5,800 at 2,900/s) then waited for it, which made the p99 of a 30 s phase the
            # pipeline's start-up (measured apart: ready_seconds).
            warm = _warm_up_traffic()
            ready_started = time.monotonic()
            for event in warm:
                _produce(producer, event["api_key_id"].encode(), _stamp(event, time.time()))
            producer.flush(30)
            while worker.get("/health")["counters"]["events"] < len(warm) and time.monotonic() < ready_started + 120:
                time.sleep(0.05)
            ready_s = time.monotonic() - ready_started
            reader.start()
            cpu_before, flushes_before = _cpu_seconds(worker), _flush_tally(worker)
            produced = len(warm)
            started = time.monotonic()
            next_sample = started
            for i, event in enumerate(events):
                due = started + i / rate
                while (now := time.monotonic()) < due:
                    time.sleep(min(0.002, due - now))
                _produce(producer, event["api_key_id"].encode(), _stamp(event, time.time()))
                producer.poll(0)
                produced += 1
                if now >= next_sample:
                    next_sample = now + 0.5
                    lag_samples.append(produced - worker.get("/health")["counters"]["events"])
            producer.flush(60)
            offered_s = time.monotonic() - started
            deadline = time.monotonic() + 120
            while worker.get("/health")["counters"]["events"] < produced and time.monotonic() < deadline:
                time.sleep(0.2)
            drained_s = time.monotonic() - started
            cpu_s = _cpu_seconds(worker) - cpu_before
            flushes, flush_s = (a - b for a, b in zip(_flush_tally(worker), flushes_before))
            time.sleep(3.0)
            alert_rows = worker.get("/query/tables")["alerts"]
            hold = _alert_hold(worker)
            loop_lag = _histogram(worker, "distillguard_event_loop_lag_seconds")
            input_age = _histogram(worker, "distillguard_input_age_seconds")
            alert_delay = _histogram(worker, "distillguard_alert_delay_seconds")
        finally:
            stop.set()
            reader.join(5)
            consumer.close()
            worker.stop()
            if packer:
                packer.stop()
    return {"broker": broker_kind, "packed": packed, "offered_rate": rate, "events": len(events),
            "offered_seconds": round(offered_s, 2), "drained_seconds": round(drained_s, 2),
            "warm_up_events": len(warm), "ready_seconds": round(ready_s, 2),
            "achieved_rate": round(len(events) / drained_s), "key_alerts": len(latencies),
            "alert_rows_in_clickhouse": alert_rows,
            "latency_p50_s": _round(_percentile(latencies, 0.5)), "latency_p99_s": _round(_percentile(latencies, 0.99)),
            "latency_max_s": _round(max(latencies) if latencies else None),
            "worker_cpu_ms_per_1k_events": round(1e6 * cpu_s / len(events)),
            # how busy the offered load kept the worker: its CPU over the phase's wall time
            "worker_busy_share": round(cpu_s / drained_s, 2),
            "sink_flushes_per_second": round(flushes / drained_s, 2),
            "sink_flush_ms_mean": round(1000 * flush_s / flushes) if flushes else None,
            "alert_hold_in_worker": hold,
            "event_loop_lag_in_worker": loop_lag,
            # where the event -> alert time goes: the input's wait on its topic before the step
            # (behind the packer: from the envelope's append), and event ts -> send in the worker
            "input_age_in_worker": input_age,
            "alert_delay_in_worker": alert_delay,
            "lag_max_events": max(lag_samples, default=0),
            "lag_p50_events": _percentile([float(x) for x in lag_samples], 0.5)}


def _worker_metrics(worker: WorkerProcess, prefix: str) -> dict[str, float]:
    """The worker's /metrics samples whose name starts with ``prefix`` (name with labels -> value)."""
    with urllib.request.urlopen(worker.request("/metrics"), timeout=10) as resp:
        text = resp.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(prefix)}


def _flush_tally(worker: WorkerProcess) -> tuple[float, float]:
    """The worker's ClickHouse flushes so far and the seconds they took (its /metrics)."""
    values = _worker_metrics(worker, "distillguard_sink_flush_seconds_")
    return values.get("distillguard_sink_flush_seconds_count", 0.0), values.get("distillguard_sink_flush_seconds_sum", 0.0)


def _alert_hold(worker: WorkerProcess) -> dict:
    """How long alerts waited in the worker between the step that raised them and their send
    (``distillguard_alert_hold_seconds``): mean, and the bucket bounds p50 and p99 fall under."""
    summary = _histogram(worker, "distillguard_alert_hold_seconds")
    return {"alerts": summary.pop("count"), **summary}


def _histogram(worker: WorkerProcess, name: str) -> dict:
    """A histogram of the worker's /metrics since it started: count, mean, and the bucket
    bounds its p50, p99 and largest observation fall under."""
    values = _worker_metrics(worker, name + "_")
    count = values.get(name + "_count", 0.0)
    if not count:
        return {"count": 0}
    buckets = sorted((float(key.split('le="')[1].rstrip('"}')), n) for key, n in values.items()
                     if key.startswith(name + "_bucket"))

    def under(q: float) -> float:
        return next(bound for bound, n in buckets if n >= q * count)
    return {"count": int(count), "mean_s": round(values[name + "_sum"] / count, 3),
            "p50_under_s": under(0.5), "p99_under_s": under(0.99), "max_under_s": under(1.0)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def run_clickhouse(n_rows: int) -> dict:
    from distillguard.models.pipeline import KeyPipeline
    from distillguard.models.step import Record, RequestProcessor
    from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink

    work = WORK / "clickhouse"
    shutil.rmtree(work, ignore_errors=True)
    step = RequestProcessor(KeyPipeline(), source_topic="llm.requests")
    batch = step.run([Record(line, offset=offset, position=offset)
                      for offset, (_, line) in enumerate(_dev_records(n_rows))], {})
    rows = [(row, offset) for row, _, offset in batch.rows]
    sink = ClickHouseSink(ClickHouseSettings(data_dir=work / "chdb"))
    try:
        started = time.monotonic()
        for row, offset in rows:
            sink.add(row, partition=offset % 8, offset=offset, topic="llm.requests")
            if sink.should_flush():
                sink.flush()
        sink.flush()
        seconds = time.monotonic() - started
        stored = sink.table_counts()["events"]
    finally:
        sink.close()
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_second": round(len(rows) / seconds),
            "rows_stored": stored}


def run_packed_comparison(n_events: int, broker_kind: str, load: float, seconds: float,
                          base: str | None = None) -> dict:
    """Direct vs packed, 2 packed workers, latency at ``load`` of the packed worker's rate: one run.

    ``base``: also one worker of that revision (its own code, read directly from ``llm.requests``
    as it could, through this harness: same events, same broker, "done" = every row stored),
    run before and after this tree's workers so that a change in the machine's load shows."""
    with tempfile.TemporaryDirectory(prefix="dg-bench-base-") as scratch:
        base_path = checkout(base, Path(scratch)) if base else None
        try:
            base_before = run_throughput(n_events, 1, broker_kind, python_path=base_path) if base else None
            direct = run_throughput(n_events, 1, broker_kind)
            packed = run_throughput(n_events, 1, broker_kind, packed=True)
            two = run_throughput(n_events, 2, broker_kind, packed=True)
            base_after = run_throughput(n_events, 1, broker_kind, python_path=base_path) if base else None
        finally:
            if base:
                remove(Path(scratch) / f"tree-{base}")
    # The latency phase's rate is a share of what one packed worker sustains on the latency
    # traffic itself, not on dev-s1: the two cost the worker differently per event (as a
    # backlog, 389-415 against 489-496 ms of CPU per 1k events on 2026-12-05). Offered below
    # that rate the worker still costs more per event than in a backlog (the work paid per
    # flush, per send and per link batch does not shrink with the rate): ``worker_busy_share``
    # says how busy the offered load kept it.
    latency_records = _latency_records(packed["events_per_second"], seconds)
    capacity = run_throughput(len(latency_records), 1, broker_kind, packed=True, records=latency_records)
    rate = round(load * capacity["events_per_second"])
    latency = run_latency(rate, seconds, broker_kind, packed=True)
    result = {"direct_1": direct, "packed_1": packed, "packed_2": two, "latency_packed": latency,
              "latency_traffic_capacity": capacity,
              "packed_vs_direct": round(packed["events_per_second"] / direct["events_per_second"], 2),
              "cpu_per_event_direct_over_packed": round(direct["worker_cpu_ms_per_1k_events"]
                                                        / packed["worker_cpu_ms_per_1k_events"], 2),
              "two_vs_one_packed": round(two["events_per_second"] / packed["events_per_second"], 2),
              "latency_load": load}
    if base:
        base_rate = (base_before["events_per_second"] + base_after["events_per_second"]) / 2
        base_cpu = (base_before["worker_cpu_ms_per_1k_events"] + base_after["worker_cpu_ms_per_1k_events"]) / 2
        result.update(base=base, base_1_before=base_before, base_1_after=base_after,
                      packed_vs_base=round(packed["events_per_second"] / base_rate, 2),
                      direct_vs_base=round(direct["events_per_second"] / base_rate, 2),
                      cpu_per_event_base_over_packed=round(base_cpu / packed["worker_cpu_ms_per_1k_events"], 2))
    return result


def packed_markdown(result: dict) -> str:
    rows = [("1 worker, direct (llm.requests)", result["direct_1"]), ("1 worker behind the packer", result["packed_1"]),
            ("2 workers behind the packer", result["packed_2"])]
    if result.get("base"):
        rows = ([(f"base {result['base']}: 1 worker (run first)", result["base_1_before"])] + rows
                + [(f"base {result['base']}: 1 worker (run last)", result["base_1_after"])])
    lines = ["# Worker behind the packer (issue #20 item 2)", "",
             f"Command: `{result['command']}` ({result['generated_at']}, {result['machine']}, load average before "
             f"{result['load_average_before']}; the machine is shared: wall-clock rates move with its load, CPU per "
             "1k events much less).", "",
             "| setup | events/s | process s | worker CPU s | worker CPU ms / 1k events | packer CPU ms / 1k events "
             "| broker CPU s | producer CPU s | machine cores busy | CH rows | alert rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['events_per_second']} | {r['process_seconds']} | {r['worker_cpu_seconds']} | "
                     f"{r['worker_cpu_ms_per_1k_events']} | {r.get('packer_cpu_ms_per_1k_events', '-')} | "
                     f"{r.get('broker_cpu_seconds', '-')} | {r.get('producer_cpu_seconds', '-')} | "
                     f"{r.get('machine_busy_cores', '-')} of {r.get('cores', '-')} | "
                     f"{r['clickhouse_rows']} | {r['alert_rows']} |")
    lat = result["latency_packed"]
    cap = result.get("latency_traffic_capacity")
    capacity_text = (f" on the latency traffic itself ({cap['events_per_second']} events/s, "
                     f"{cap['worker_cpu_ms_per_1k_events']} ms of worker CPU per 1k events; dev-s1: "
                     f"{result['packed_1']['events_per_second']} events/s)") if cap else ""
    if result.get("base"):
        # (issue 20's targets are against 55718be, main when it began; another base is another question)
        target = " (target x4)" if str(result["base"]).startswith("55718be") else ""
        lines += ["", f"- against {result['base']} (its worker reading llm.requests directly; the mean of its two "
                  f"runs): one packed worker x{result['packed_vs_base']} events/s{target}, one direct worker "
                  f"x{result['direct_vs_base']}; worker CPU per event base / packed: "
                  f"x{result['cpu_per_event_base_over_packed']}"]
    lines += ["", f"- packed / direct, events/s: x{result['packed_vs_direct']}; worker CPU per event direct / packed: "
              f"x{result['cpu_per_event_direct_over_packed']}",
              f"- 2 packed workers / 1: x{result['two_vs_one_packed']} (target 1.7; two workers, the packer, the "
              f"broker, the producer and chDB share {result['packed_2'].get('cores', '?')} cores here: "
              f"{result['packed_2'].get('machine_busy_cores', '?')} were busy on average while 2 workers ran)",
              f"- event -> alert latency behind the packer at {round(100 * result['latency_load'])} % of the packed "
              f"worker's rate{capacity_text} ({lat['offered_rate']} events/s offered, {lat['achieved_rate']} achieved, "
              f"{lat['key_alerts']} key alerts; the worker was busy {lat.get('worker_busy_share', '?')} of the "
              f"time): p50 {lat['latency_p50_s']} s, p99 {lat['latency_p99_s']} s, "
              f"max {lat['latency_max_s']} s (target p99 <= 0.5 s); lag max {lat['lag_max_events']} events"]
    hold = lat.get("alert_hold_in_worker") or {}
    if hold.get("alerts"):
        lines.append(f"- of that, alerts waited in the worker from their step to their send "
                     f"{hold['mean_s']} s on average, p50 under {hold['p50_under_s']} s, p99 under "
                     f"{hold['p99_under_s']} s ({hold['alerts']} alerts, cluster alerts included)")
    age, delay = lat.get("input_age_in_worker") or {}, lat.get("alert_delay_in_worker") or {}
    if age.get("count") and delay.get("count"):
        lines.append(f"- envelopes waited on their topic {age['mean_s']} s on average before the worker stepped them "
                     f"(p50 under {age['p50_under_s']} s, p99 under {age['p99_under_s']} s: "
                     f"`distillguard_input_age_seconds`, {age['count']} messages); the worker's own event -> send "
                     f"delay, p50 under {delay['p50_under_s']} s, p99 under {delay['p99_under_s']} s "
                     f"(`distillguard_alert_delay_seconds`, {delay['count']} alerts)")
    stalls = lat.get("event_loop_lag_in_worker") or {}
    if stalls.get("count"):
        lines.append(f"- the worker's event loop woke its 0.1 s timer late by {stalls['mean_s']} s on average, p99 "
                     f"under {stalls['p99_under_s']} s, at most under {stalls['max_under_s']} s "
                     f"(`distillguard_event_loop_lag_seconds`, {stalls['count']} wake-ups)")
    return "\n".join(lines) + "\n"


def run_packer_alone(n_events: int, broker_kind: str) -> dict:
    """The packer by itself: how fast it packs a backlog of ``n_events`` dev-s1 events into
    envelopes (no worker reading them): whether it can be what limits the workers behind it."""
    work = WORK / "packer-alone"
    shutil.rmtree(work, ignore_errors=True)
    records = _dev_records(n_events)
    with EmbeddedBroker(broker_kind, data_dir=work / "broker", log_path=work / "broker.log") as broker:
        ensure_topics(WorkerSettings(kafka_bootstrap=broker.bootstrap, read_packed=True))
        packer = _start_packer(broker, work)
        try:
            time.sleep(3.0)  # its group assignment
            producer = _producer(broker.bootstrap)
            cpu_before, started = _cpu_seconds(packer), time.monotonic()
            for key, value in records:
                _produce(producer, key, value)
            producer.flush(60)
            produced_s = time.monotonic() - started
            while _health(packer)["records"] < len(records) and time.monotonic() < started + 300:
                time.sleep(0.05)
            packed_s = time.monotonic() - started
            cpu_s = _cpu_seconds(packer) - cpu_before
        finally:
            packer.stop()
    return {"events": len(records), "produce_seconds": round(produced_s, 2), "packed_seconds": round(packed_s, 2),
            "packer_events_per_second": round(len(records) / packed_s), "packer_cpu_seconds": round(cpu_s, 2)}


def run_latency_settings(variants: list[dict], rounds: int, rate: float, seconds: float, broker_kind: str) -> dict:
    """The packed latency phase under each variant of DG_* settings (e.g. the packer's
    ``DG_PACKER_MAX_WAIT_MS``, the worker's ``DG_CONSUMER_FETCH_MAX_WAIT_MS``), interleaved
    ``rounds`` times (a loaded machine slows every variant alike)."""
    runs = []
    for round_ in range(1, rounds + 1):
        for variant in variants:
            result = run_latency(rate, seconds, broker_kind, packed=True, settings_env=variant)
            label = ", ".join(f"{k}={v}" for k, v in variant.items()) or "defaults"
            runs.append(dict(result, round=round_, settings=label))
            print(f"round {round_}, {label}: p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s",
                  flush=True)
    return {"rate": rate, "seconds": seconds, "variants": variants, "rounds": rounds, "runs": runs}


def parse_setting_variant(text: str) -> dict:
    """``DG_A=1,DG_B=2`` -> {"DG_A": "1", "DG_B": "2"}; ``defaults`` -> {}."""
    if text == "defaults":
        return {}
    variant = dict(part.split("=", 1) for part in text.split(","))
    if not all(name.startswith("DG_") for name in variant):
        raise SystemExit(f"--setting {text!r}: DG_NAME=VALUE pairs separated by commas")
    return variant


def latency_settings_markdown(result: dict) -> str:
    lines = ["# Event -> alert latency by settings", "",
             f"Command: `{result['command']}`", "",
             f"One packed worker, {result['rate']:.0f} events/s offered for {result['seconds']:.0f} s after a "
             "warm-up (the pipeline moving events end to end), embedded tansu + chDB; the variants take turns "
             f"in every round. Machine: {result['machine']}, load {result['load_average_before']} before.", "",
             "| round | settings | achieved events/s | p50 (s) | p99 (s) | max (s) | lag max (events) "
             "| worker CPU per 1k events (ms) | alert hold in worker, mean (s) | event loop lag p99 / max under (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        hold = (r.get("alert_hold_in_worker") or {}).get("mean_s")
        stalls = r.get("event_loop_lag_in_worker") or {}
        lines.append(f"| {r['round']} | {r['settings']} | {r['achieved_rate']} | {r['latency_p50_s']} | "
                     f"{r['latency_p99_s']} | {r['latency_max_s']} | {r['lag_max_events']} | "
                     f"{r['worker_cpu_ms_per_1k_events']} | {hold} | {stalls.get('p99_under_s')} / "
                     f"{stalls.get('max_under_s')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", action="append",
                        choices=["throughput", "latency", "scaleout", "clickhouse", "packed", "packer-wait",
                                 "latency-settings", "packer"])
    parser.add_argument("--packer-wait", type=int, action="append", dest="packer_waits",
                        help="the packer-wait phase: a DG_PACKER_MAX_WAIT_MS to run the packed latency phase at "
                        "(repeat; default 100 and 200)")
    parser.add_argument("--setting", action="append", dest="settings", type=parse_setting_variant,
                        help="the latency-settings phase: one variant, DG_NAME=VALUE[,DG_NAME=VALUE...] given to "
                        "the packed worker and the packer (repeat; 'defaults' for none)")
    parser.add_argument("--rounds", type=int, default=2, help="the packer-wait and latency-settings phases' "
                        "interleaved rounds")
    parser.add_argument("--packed", action="store_true", help="throughput, scaleout, latency behind the packer")
    parser.add_argument("--load", type=float, default=0.6, help="the packed phase's latency rate: this share of "
                        "the events/s one packed worker sustains on the latency traffic")
    parser.add_argument("--markdown", type=Path, default=ROOT / "benchmarks" / "results" / "worker-packed.md",
                        help="where the packed phase writes its table")
    parser.add_argument("--base", help="the packed phase also runs one worker of this revision (e.g. 55718be, "
                        "main when issue 20 began) before and after this tree's, and reports the ratios")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=600.0, help="offered events/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the latency phase")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--broker", default="tansu", choices=["tansu", "noida"])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file the phases are merged into")
    args = parser.parse_args()
    phases = args.phase or ["throughput", "latency", "scaleout", "clickhouse"]
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    results = {k: v for k, v in results.items()
               if k in ("throughput", "latency", "scaleout", "clickhouse", "packed", "packer-wait", "latency-settings",
                        "packer")}
    for phase in phases:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        load = os.getloadavg()[0]
        if phase == "throughput":
            result = run_throughput(args.events, 1, args.broker, args.packed)
        elif phase == "packed":
            result = run_packed_comparison(args.events, args.broker, args.load, args.seconds, args.base)
        elif phase == "scaleout":
            two = run_throughput(args.events, 2, args.broker, args.packed)
            one = results.get("throughput") or run_throughput(args.events, 1, args.broker, args.packed)
            result = dict(two, one_worker_events_per_second=one["events_per_second"],
                          speedup=round(two["events_per_second"] / one["events_per_second"], 2))
        elif phase == "latency":
            result = run_latency(args.rate, args.seconds, args.broker, args.packed)
        elif phase == "packer":
            result = run_packer_alone(args.events, args.broker)
        elif phase == "packer-wait":
            result = run_latency_settings([{"DG_PACKER_MAX_WAIT_MS": str(w)} for w in args.packer_waits or [100, 200]],
                                          args.rounds, args.rate, args.seconds, args.broker)
        elif phase == "latency-settings":
            result = run_latency_settings(args.settings or [{}], args.rounds, args.rate, args.seconds, args.broker)
        else:
            result = run_clickhouse(args.rows)
        result.update({"generated_at": started, "load_average_before": round(load, 2),
                       "command": "python benchmarks/pipeline.py " + " ".join(sys.argv[1:]),
                       "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"})
        results[phase] = result
        if phase == "packed":
            args.markdown.write_text(packed_markdown(result))
        elif phase in ("packer-wait", "latency-settings"):
            args.markdown.write_text(latency_settings_markdown(result))
        print(phase, json.dumps(result, indent=1), flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
