"""``distillguard demo``: the whole pipeline on the embedded default, with built-in traffic.

Starts the embedded broker, creates the topics, starts one worker (which owns the embedded
chDB), feeds the demo traffic, prints alerts as they arrive on ``distill.alerts``, then asks
the worker (the process that owns ClickHouse) for a summary, and stops everything.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from .demo_traffic import bad_records, demo_events, iter_encoded
from .embedded import EmbeddedBroker
from .processes import WorkerProcess


def _print_alert(alert: dict, out) -> None:
    reasons = "; ".join(f"{r['signal']}={r.get('value')}" for r in alert.get("reasons", [])[:3])
    out.write(f"ALERT {alert['severity']:<8} {alert['entity_type']}:{alert['entity_id']:<20} "
              f"score={alert['score']:.2f} events={alert.get('events_seen')} id={alert['alert_id']}\n"
              f"      why: {reasons}\n")
    out.flush()


def run_demo(*, data_dir: Path, broker_kind: str = "tansu", forever: bool = False, rate: float = 400.0,
             out=sys.stdout) -> int:
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo starts clean every time
    data_dir.mkdir(parents=True)
    out.write(f"starting embedded {broker_kind} broker ...\n")
    with EmbeddedBroker(broker_kind, data_dir=data_dir / "broker", log_path=data_dir / "broker.log") as broker:
        from distillguard.streams.settings import WorkerSettings
        from distillguard.streams.topics import ensure_topics

        settings = WorkerSettings(kafka_bootstrap=broker.bootstrap, data_dir=data_dir)
        ensure_topics(settings)
        out.write(f"broker ready on {broker.bootstrap}; starting worker (chDB in {data_dir}/clickhouse) ...\n")
        worker = WorkerProcess(broker.bootstrap, data_dir).start()
        try:
            out.write(f"worker ready ({worker.url}); feeding demo traffic ...\n\n")
            # Assigned, not subscribed: a viewer needs no consumer group (and no group join wait).
            consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "distillguard-demo-viewer",
                                 "enable.auto.commit": False})
            consumer.assign([TopicPartition(settings.alerts_topic, p, 0) for p in range(settings.partitions)])
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "log.connection.close": False,
                                 "enable.idempotence": True})
            events = demo_events(hydra_keys=30)
            records = list(iter_encoded(events))
            records[len(records) // 2:len(records) // 2] = [(b"bad", raw) for raw in bad_records()]
            seen: dict[str, str] = {}

            def drain(timeout: float) -> None:
                msg = consumer.poll(timeout)
                while msg is not None:
                    if not msg.error():
                        alert = json.loads(msg.value())
                        if seen.get(alert["alert_id"]) != alert["severity"]:
                            seen[alert["alert_id"]] = alert["severity"]
                            _print_alert(alert, out)
                    msg = consumer.poll(0)

            started = time.monotonic()
            for i, (key, value) in enumerate(records):
                producer.produce(settings.requests_topic, key=key, value=value)
                if i % 50 == 0:
                    producer.poll(0)
                    drain(0)
                    target = started + i / rate
                    if target > time.monotonic():
                        time.sleep(target - time.monotonic())
            producer.flush(15)
            # Destroyed now, while the broker runs: left to the interpreter's exit, librdkafka
            # reconnected to the broker already stopped and printed "Connection refused".
            del producer
            out.write(f"\nproduced {len(records)} records ({len(bad_records())} bad) in "
                      f"{time.monotonic() - started:.1f}s; waiting for the worker to catch up ...\n")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                drain(0.5)
                counters = worker.get("/health")["counters"]
                if counters["events"] >= len(records):
                    break
            time.sleep(2.0)  # one more flush of the ClickHouse sink
            drain(1.0)
            counters = worker.get("/health")["counters"]
            out.write(f"worker counters: {json.dumps(counters)}\n\n")
            summary = worker.get("/summary?limit=8")["top_keys"]
            out.write("ClickHouse summary: top keys by max score\n")
            out.write(_table(summary))
            out.write(f"\n{len(seen)} incident(s) alerted.\n")
            if forever:
                out.write("running until Ctrl-C (metrics: %s/metrics, dashboard: %s/dashboard/)\n"
                          % (worker.url, worker.url))
                try:
                    while True:
                        drain(1.0)
                except KeyboardInterrupt:
                    pass
            consumer.close()
            out.write(f"dashboard over this run: distillguard dashboard --data-dir {data_dir}\n")
            return 0 if seen else 1
        finally:
            worker.stop()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)[:40]


def _table(rows: list[dict]) -> str:
    """Rows as right-aligned columns, each as wide as its widest cell (ids are not cut short:
    a hydra's keys differ only at their end).

    >>> print(_table([{"api_key_id": "demo_hydra_infra_001", "max_score": 1.0}]), end="")
                api_key_id  max_score
      demo_hydra_infra_001      1.000
    """
    if not rows:
        return ""
    cols = list(rows[0])
    cells = [[_fmt(row[c]) for c in cols] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(cols)]
    lines = [cols] + cells
    return "".join("  " + "  ".join(f"{cell:>{w}}" for cell, w in zip(line, widths)) + "\n" for line in lines)
