#!/usr/bin/env python3
"""End-to-end throughput: producer -> embedded broker -> one worker -> alerts + chDB.

    python benchmarks/pipeline.py [--events 30000] [--broker tansu]

Feeds the first N events of the dev stream as fast as the producer can, and measures how
long one worker takes to process them all (events/s sustained), plus ClickHouse rows.
Writes ``benchmarks/results/pipeline.json``. Not a test: numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from confluent_kafka import Producer

from distillguard.embedded import EmbeddedBroker
from distillguard.processes import WorkerProcess
from distillguard.streams.settings import WorkerSettings
from distillguard.streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "streams" / "dev-s1" / "events.jsonl.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--broker", default="tansu", choices=["tansu", "noida"])
    args = parser.parse_args()
    work = ROOT / "var" / "bench-pipeline"
    shutil.rmtree(work, ignore_errors=True)
    records = []
    with gzip.open(DEV, "rb") as fh:
        for line in fh:
            records.append((json.loads(line)["api_key_id"].encode(), line.rstrip(b"\n")))
            if len(records) >= args.events:
                break
    with EmbeddedBroker(args.broker, data_dir=work / "broker", log_path=work / "broker.log") as broker:
        ensure_topics(WorkerSettings(kafka_bootstrap=broker.bootstrap))
        worker = WorkerProcess(broker.bootstrap, work / "data").start()
        try:
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "compression.type": "lz4",
                                 "enable.idempotence": True})
            started = time.monotonic()
            for key, value in records:
                while True:
                    try:
                        producer.produce("llm.requests", key=key, value=value)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.flush(60)
            produced_s = time.monotonic() - started
            while worker.get("/health")["counters"]["events"] < len(records):
                time.sleep(0.2)
            processed_s = time.monotonic() - started
            time.sleep(2.0)
            tables = worker.get("/query/tables")
        finally:
            worker.stop()
    result = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "python benchmarks/pipeline.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {platform.python_version()}", "broker": args.broker,
              "events": len(records), "produce_seconds": round(produced_s, 2),
              "process_seconds": round(processed_s, 2),
              "events_per_second_end_to_end": round(len(records) / processed_s),
              "clickhouse_rows": tables["events"], "alerts_rows": tables["alerts"]}
    out = ROOT / "benchmarks" / "results" / "pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
