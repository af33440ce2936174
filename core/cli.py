"""``distillguard`` command line: worker, replay, demo, produce, broker, dashboard."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def _cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from distillguard.streams.app import create_app
    from distillguard.streams.settings import WorkerSettings
    from distillguard.streams.topics import ensure_topics

    settings = WorkerSettings()
    ensure_topics(settings)
    app = create_app(settings)
    faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False).execute_from_commandline()
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from distillguard.replay import run_replay

    summary = run_replay(args.events, args.alerts, dlq_path=args.dlq, progress=not args.quiet)
    print(summary.describe() if hasattr(summary, "describe") else summary, file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from distillguard.demo import run_demo

    return run_demo(data_dir=Path(args.data_dir), broker_kind=args.broker, forever=args.forever, rate=args.rate)


def _cmd_produce(args: argparse.Namespace) -> int:
    """Feed an events file to ``llm.requests`` (message key = api_key_id), at a rate if asked."""
    import gzip
    import json

    from confluent_kafka import Producer

    from distillguard.streams.settings import WorkerSettings
    from distillguard.streams.topics import ensure_topics

    settings = WorkerSettings()
    ensure_topics(settings)
    producer = Producer({**settings.confluent_config(), "linger.ms": 10, "enable.idempotence": True,
                         "compression.type": "lz4"})
    opener = gzip.open if str(args.events).endswith(".gz") else open
    started, sent = time.monotonic(), 0
    with opener(args.events, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\n")
            if not line:
                continue
            try:
                key = json.loads(line).get("api_key_id", "").encode()
            except (ValueError, AttributeError):
                key = None  # the worker dead-letters it
            while True:
                try:
                    producer.produce(settings.requests_topic, key=key, value=line)
                    break
                except BufferError:
                    producer.poll(0.1)
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)
                if args.rate:
                    ahead = started + sent / args.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
    producer.flush(60)
    print(f"produced {sent} records in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def _cmd_broker(args: argparse.Namespace) -> int:
    from distillguard.embedded import EmbeddedBroker

    with EmbeddedBroker(args.kind, data_dir=Path(args.data_dir) / "broker", port=args.port) as broker:
        print(f"DG_KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from distillguard.dashboard import DashboardSettings, data_dir_settings, seed_demo, serve

    ch_settings = data_dir_settings(args.data_dir)
    if args.seed_demo:
        print(f"seeded {seed_demo(ch_settings)}", file=sys.stderr)
        return 0
    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    serve(ch_settings, DashboardSettings(**overrides))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillguard", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a Faust worker (settings from DG_* env)").set_defaults(func=_cmd_worker)

    replay = sub.add_parser("replay", help="run the detector over an events file, no Kafka")
    replay.add_argument("events", type=Path)
    replay.add_argument("--alerts", type=Path, required=True, help="alert v1 JSONL output")
    replay.add_argument("--dlq", type=Path, help="write bad lines with their reason here")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    replay.set_defaults(func=_cmd_replay)

    demo = sub.add_parser("demo", help="embedded broker + chDB + worker + built-in traffic")
    demo.add_argument("--forever", action="store_true", help="keep running after the traffic")
    demo.add_argument("--broker", choices=["tansu", "noida"], default="tansu")
    demo.add_argument("--data-dir", default="var/demo")
    demo.add_argument("--rate", type=float, default=400.0, help="events per second")
    demo.set_defaults(func=_cmd_demo)

    produce = sub.add_parser("produce", help="feed an events file to the requests topic")
    produce.add_argument("events", type=Path)
    produce.add_argument("--rate", type=float, default=0.0, help="events per second (0 = as fast as possible)")
    produce.set_defaults(func=_cmd_produce)

    dashboard = sub.add_parser("dashboard", help="read-only web dashboard over ClickHouse (embedded or server)")
    dashboard.add_argument("--data-dir", help="the data dir whose embedded chDB to open (default DG_DATA_DIR); "
                           "e.g. var/demo after `make demo`")
    dashboard.add_argument("--host", help="listen address (default DG_DASHBOARD_HOST, 127.0.0.1)")
    dashboard.add_argument("--port", type=int, help="listen port (default DG_DASHBOARD_PORT, 8050)")
    dashboard.add_argument("--seed-demo", action="store_true",
                           help="write the built-in demo traffic, scored, into ClickHouse (no Kafka) and exit")
    dashboard.set_defaults(func=_cmd_dashboard)

    broker = sub.add_parser("broker", help="run the embedded broker in the foreground")
    broker.add_argument("--kind", choices=["tansu", "noida"], default="tansu")
    broker.add_argument("--port", type=int)
    broker.add_argument("--data-dir", default="var")
    broker.set_defaults(func=_cmd_broker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        sys.argv = [sys.argv[0]]  # faust's Worker parses argv itself
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
