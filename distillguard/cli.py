"""``distillguard`` command line: worker, replay, demo, produce, broker, dashboard, migrate."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


def _cmd_worker(args: argparse.Namespace) -> int:
    from distillguard.errors import ConfigError
    from distillguard.gc_tuning import tune_gc
    from distillguard.models.pipeline import KeyPipeline
    from distillguard.streams.app import worker_app
    from distillguard.streams.faust_compat import faust_worker
    from distillguard.streams.settings import WorkerSettings
    from distillguard.streams.topics import ensure_topics
    from distillguard.streams.web import check_web_settings

    try:
        settings = WorkerSettings()  # a bad DG_* value stops the worker here, naming the variable
        check_web_settings(settings)  # an endpoint open to the network stops the worker here
        config = settings.detector_config()  # a bad overrides file stops the worker here, with the reason
    except ConfigError as exc:
        print(f"distillguard worker: {exc}", file=sys.stderr)
        return 2
    ensure_topics(settings)
    app = worker_app(settings, pipeline=KeyPipeline(config))
    tune_gc()
    faust_worker(app, settings.log_level).execute_from_commandline()
    return 0


def _cmd_packer(args: argparse.Namespace) -> int:
    from distillguard.errors import ConfigError
    from distillguard.streams.packer import PackerSettings, run_packer

    try:
        settings = PackerSettings()
        return run_packer(settings)
    except ConfigError as exc:
        print(f"distillguard packer: {exc}", file=sys.stderr)
        return 2


def _cmd_router(args: argparse.Namespace) -> int:
    from distillguard.streams.faust_compat import faust_worker
    from distillguard.streams.router import create_router_app, router_topics

    loaded = _router_setup("router", args.routes)
    if loaded is None:
        return 2
    settings, config = loaded
    partitions = router_topics(settings, settings.confluent_config())
    settings = settings.model_copy(update={"partitions": partitions})
    app = create_router_app(settings, config)
    faust_worker(app, settings.log_level).execute_from_commandline()
    return 0


def _router_setup(command: str, routes: Path | None):
    """The router's settings and routes file, or None after printing why they are not valid."""
    from distillguard.errors import ConfigError
    from distillguard.sinks.routing.routes import load_routes
    from distillguard.streams.router import RouterSettings
    from distillguard.streams.web import check_web_settings

    try:
        settings = RouterSettings()
        check_web_settings(settings)  # an endpoint open to the network stops the router here
        routes_file = routes or settings.routes_file
        config = load_routes(routes_file)
    except ConfigError as exc:
        print(f"distillguard {command}: {exc}", file=sys.stderr)
        return None
    return settings.model_copy(update={"routes_file": Path(routes_file)}), config


def _cmd_routes_check(args: argparse.Namespace) -> int:
    """``routes check``: the routes file, every Alertmanager replica, and its config (amtool)."""
    import asyncio

    from distillguard.sinks.routing.check import check_alertmanager_config, check_replicas

    loaded = _router_setup("routes check", args.routes)
    if loaded is None:
        return 2
    settings, _ = loaded
    problems = asyncio.run(check_replicas(settings.alertmanager_urls, settings.alertmanager_timeout_s))
    if args.alertmanager_config is not None:
        problems += check_alertmanager_config(args.alertmanager_config)
    for line in problems:
        print(f"distillguard routes check: {line}", file=sys.stderr)
    if not problems:
        print(f"routes file {settings.routes_file} valid; {len(settings.alertmanager_urls)} Alertmanager "
              f"replica(s) ready" + (f"; {args.alertmanager_config} valid" if args.alertmanager_config else ""))
    return 1 if problems else 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    """``ack`` / ``resolve`` / ``false-positive``: one record on the feedback topic."""
    import getpass

    from distillguard.errors import ConfigError
    from distillguard.contracts.feedback import Feedback
    from distillguard.feedback import FeedbackCommandSettings, produce_feedback, split_entity

    try:
        settings = FeedbackCommandSettings()
    except ConfigError as exc:
        print(f"distillguard {args.command}: {exc}", file=sys.stderr)
        return 2
    entity_type, entity_id = split_entity(args.entity, args.type)
    until = None
    if args.command == "snooze":
        until = time.time() + args.duration
    record = Feedback.new(entity_type, entity_id, args.command.replace("-", "_"), reason=args.reason or "",
                          actor=args.actor or settings.actor or getpass.getuser(), until=until)
    from distillguard.streams.router import RouterSettings, router_topics

    topic = args.topic or settings.feedback_topic
    kafka = settings.confluent_config()
    # Created like the router creates it (as many partitions as the alerts topic), never
    # auto-created with the broker's default count.
    router_topics(RouterSettings(feedback_topic=topic), kafka, names=(topic,))
    produce_feedback(kafka, topic, record)
    print(f"{record.action} {entity_type}:{entity_id} -> {topic} ({record.feedback_id})", file=sys.stderr)
    return 0


def _duration_s(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 2h, 1d)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a snooze lasts more than 0 seconds")
    return value


def _cmd_evidence(args: argparse.Namespace) -> int:
    from distillguard.evidence import EvidenceError, write_evidence
    from distillguard.sinks.clickhouse import ClickHouseSettings

    try:
        paths = write_evidence(args.incident, Path(args.out), ClickHouseSettings(),
                               include_prompts=args.include_prompts)
    except EvidenceError as exc:
        print(f"distillguard evidence: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def default_replay_jobs() -> int:
    """One per CPU this process may use, at most 8 (beyond that the one process of the
    cross-key detectors, about a third of the work, is the bottleneck); 1 on one CPU."""
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def _jobs(text: str) -> int:
    jobs = int(text)
    if jobs < 1:
        raise argparse.ArgumentTypeError("--jobs must be 1 or more")
    return jobs


def _cmd_replay(args: argparse.Namespace) -> int:
    from distillguard.errors import ConfigError, DistillguardError
    from distillguard.gc_tuning import tune_gc
    from distillguard.replay import run_replay
    from distillguard.streams.settings import WorkerSettings

    if (args.events is None) == (args.from_kafka is None):
        print("distillguard replay: give an events file or --from-kafka BOOTSTRAP (one of them)", file=sys.stderr)
        return 2
    sink = None
    try:  # the workers' overrides (DG_DETECTOR_OVERRIDES_FILE), or --overrides: a backtest of them
        settings = WorkerSettings()
        config = settings.detector_config(args.overrides)
        events = args.events if args.from_kafka is None else _kafka_window(args, settings)
        if args.clickhouse:  # the workers' DG_CLICKHOUSE_* / DG_DATA_DIR
            from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink

            sink = ClickHouseSink(ClickHouseSettings())
        tune_gc()
        summary = run_replay(events, args.alerts, dlq_path=args.dlq, progress=not args.quiet, config=config,
                             allowed_lateness_ms=int(settings.allowed_lateness_s * 1000), sink=sink,
                             exculpated_path=args.exculpated,
                             send_exculpated=args.send_exculpated or settings.send_exculpated,
                             jobs=args.jobs)
    except ConfigError as exc:
        print(f"distillguard replay: {exc}", file=sys.stderr)
        return 2
    except DistillguardError as exc:
        print(f"distillguard replay: {exc}", file=sys.stderr)
        return 1
    finally:
        if sink is not None:
            sink.close()
    print(summary.describe(), file=sys.stderr)
    return 0


def _kafka_window(args: argparse.Namespace, settings):
    """``--from-kafka``: the topic's records between ``--since`` and ``--until``."""
    from distillguard.errors import ConfigError
    from distillguard.replay import BackfillError, KafkaWindow, time_window_ms

    if not (args.since and args.until):
        raise ConfigError("--from-kafka needs --since and --until (ISO 8601 times)")
    try:
        since_ms, until_ms = time_window_ms(args.since, args.until)
    except BackfillError as exc:  # a usage error (exit 2), not a failed run
        raise ConfigError(str(exc)) from None
    kafka = {**settings.confluent_config(), "bootstrap.servers": args.from_kafka}
    return KafkaWindow(kafka, args.topic or settings.requests_topic, since_ms, until_ms)


def _cmd_demo(args: argparse.Namespace) -> int:
    from distillguard.devtools.demo import run_demo

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
    from distillguard.devtools.embedded import EmbeddedBroker

    with EmbeddedBroker(args.kind, data_dir=Path(args.data_dir) / "broker", port=args.port) as broker:
        print(f"DG_KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from distillguard.dashboard.server import DashboardSettings, data_dir_settings, seed_demo, serve
    from distillguard.errors import DistillguardError

    ch_settings = data_dir_settings(args.data_dir)
    if args.seed_demo:
        print(f"seeded {seed_demo(ch_settings)}", file=sys.stderr)
        return 0
    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    try:
        serve(ch_settings, DashboardSettings(**overrides))
    except DistillguardError as exc:
        print(f"distillguard dashboard: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the ClickHouse schema migrations and exit: the k8s Job before a rollout, so the
    workers and the dashboard can run with DG_CLICKHOUSE_MIGRATE=false (no DDL rights)."""
    from distillguard.dashboard.server import data_dir_settings
    from distillguard.errors import DistillguardError
    from distillguard.sinks.clickhouse import apply_migrations, make_client
    from distillguard.sinks.migrations import LATEST

    ch_settings = data_dir_settings(args.data_dir)
    try:
        client = make_client(ch_settings)
        try:
            applied = apply_migrations(client, ch_settings)
        finally:
            client.close()
    except DistillguardError as exc:
        print(f"distillguard migrate: {exc}", file=sys.stderr)
        return 2
    print(f"{ch_settings.describe()}: schema v{LATEST}" + (f", applied {applied}" if applied else ", up to date"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillguard", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a Faust worker (settings from DG_* env)").set_defaults(func=_cmd_worker)

    sub.add_parser("packer", help="pack llm.requests into batch envelopes for workers with DG_READ_PACKED "
                   "(settings from DG_* env)").set_defaults(func=_cmd_packer)

    router = sub.add_parser("router", help="run the alert router (settings from DG_ROUTER_* env)")
    router.add_argument("--routes", type=Path, help="routes file, YAML or TOML (default $DG_ROUTER_ROUTES_FILE)")
    router.set_defaults(func=_cmd_router)

    routes = sub.add_parser("routes", help="the routing setup (routes file, Alertmanager)")
    routes_sub = routes.add_subparsers(dest="routes_command", required=True)
    check = routes_sub.add_parser("check", help="validate the routes file, reach every DG_ALERTMANAGER_URLS "
                                  "replica, and check an Alertmanager config with amtool")
    check.add_argument("--routes", type=Path, help="routes file (default $DG_ROUTER_ROUTES_FILE)")
    check.add_argument("--alertmanager-config", type=Path,
                       help="alertmanager.yml to validate (e.g. deploy/alertmanager/alertmanager.yml)")
    check.set_defaults(func=_cmd_routes_check)

    for name, text in (("ack", "acknowledge an entity's incident"), ("resolve", "resolve an entity's incident"),
                       ("false-positive", "mark an entity a false positive: resolved, suppressed, recorded"),
                       ("snooze", "silence an entity's pages in Alertmanager for --for DURATION (detection and "
                                  "actions go on)"),
                       ("unsnooze", "end an entity's snooze (its silences are deleted)")):
        feedback = sub.add_parser(name, help=text)
        if name == "snooze":
            feedback.add_argument("--for", dest="duration", type=_duration_s, required=True,
                                  help="e.g. 30m, 2h, 1d")
        feedback.add_argument("entity", help="ID (a key), or key:ID / account:ID / cluster:ID")
        feedback.add_argument("--type", choices=["key", "account", "cluster"], default="key",
                              help="entity type when ENTITY has no prefix")
        feedback.add_argument("--reason", default="")
        feedback.add_argument("--actor", help="who (default $DG_ACTOR or the login name)")
        feedback.add_argument("--topic", help="feedback topic (default $DG_FEEDBACK_TOPIC or distill.feedback)")
        feedback.set_defaults(func=_cmd_feedback)

    evidence = sub.add_parser("evidence", help="write a forensic bundle for an incident from ClickHouse")
    evidence.add_argument("incident", help="alert id (key:K:1, cluster:C), router dedup key (dg:key:K:1) "
                                           "or entity (key:K: its latest incident)")
    evidence.add_argument("--out", required=True, help="output directory")
    evidence.add_argument("--include-prompts", action="store_true",
                          help="opt in to prompt text (none is stored by default, so none is written)")
    evidence.set_defaults(func=_cmd_evidence)

    replay = sub.add_parser("replay", help="run the detector over an events file, or backfill a window of a "
                            "Kafka topic (--from-kafka)")
    replay.add_argument("events", type=Path, nargs="?", help="events file (JSONL, .gz too)")
    replay.add_argument("--from-kafka", metavar="BOOTSTRAP", help="read the topic on these brokers instead of a "
                        "file (security settings from DG_KAFKA_*; no consumer group, no commits)")
    replay.add_argument("--topic", help="with --from-kafka (default DG_REQUESTS_TOPIC)")
    replay.add_argument("--since", help="with --from-kafka: first record time, ISO 8601 (UTC without a zone)")
    replay.add_argument("--until", help="with --from-kafka: records before this time, ISO 8601")
    replay.add_argument("--clickhouse", action="store_true", help="also store rows, alerts and dead letters in "
                        "ClickHouse as the workers do (DG_CLICKHOUSE_URL or the chDB under DG_DATA_DIR)")
    replay.add_argument("--alerts", type=Path, required=True, help="alert v1 JSONL output")
    replay.add_argument("--dlq", type=Path, help="write bad lines with their reason here")
    replay.add_argument("--exculpated", type=Path, help="write the exculpated detections here (alert v1 JSONL: "
                        "incidents held at info on a real product's or a mature account's evidence, which the "
                        "workers record and do not send)")
    replay.add_argument("--send-exculpated", action="store_true", help="write the exculpated detections among the "
                        "alerts too, as workers with DG_SEND_EXCULPATED do (default: that setting)")
    replay.add_argument("--overrides", type=Path, help="detector overrides (YAML/JSON: allow_keys, allow_accounts, "
                        "key_threshold_scale, account_threshold_scale, thresholds, min_events); default: "
                        "DG_DETECTOR_OVERRIDES_FILE")
    replay.add_argument("--jobs", type=_jobs, default=default_replay_jobs(),
                        help="processes that step the keys, the cross-key detectors in one more; the same "
                             "output for any number (default: the CPUs this process may use, at most 8)")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress bar (none either when stderr is "
                        "not a terminal): only the summary line")
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

    migrate = sub.add_parser("migrate", help="apply the ClickHouse schema migrations and exit (DG_CLICKHOUSE_*)")
    migrate.add_argument("--data-dir", help="the data dir whose embedded chDB to migrate (default DG_DATA_DIR)")
    migrate.set_defaults(func=_cmd_migrate)

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
    if args.command in ("worker", "router"):
        sys.argv = [sys.argv[0]]  # faust's Worker parses argv itself
    from distillguard.errors import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:  # any command's bad DG_* value or file: the variable or file named, no traceback
        print(f"distillguard {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
