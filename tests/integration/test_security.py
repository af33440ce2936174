"""Secrets never reach logs, metrics, endpoints or alerts; no prompt text at rest.

Worker subprocesses run with recognisable secrets in their environment: a running worker
(debug logs) and workers whose start fails because of those credentials (a SASL handshake
the broker refuses, a ClickHouse URL with a password that cannot be reached). Their whole
stdout/stderr, their web endpoints and every topic they write are searched for the secrets.
"""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

from distillguard.demo_traffic import demo_events, iter_encoded
from distillguard.embedded import free_port

KAFKA_SECRET = "Kafka-S3cret-7f3a91"
CLICKHOUSE_SECRET = "ClickHouse-S3cret-c04e2b"
SECRETS = (KAFKA_SECRET, CLICKHOUSE_SECRET)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return resp.read().decode("utf-8", "replace")


def _run_failing_worker(pipeline, tmp_path, name: str, **env) -> str:
    """Start a worker expected to fail at start-up; its exit code and whole output."""
    full = {**os.environ, **pipeline.env, "DG_KAFKA_BOOTSTRAP": pipeline.broker.bootstrap,
            "DG_DATA_DIR": str(tmp_path / name), "DG_WEB_PORT": str(free_port()), "DG_LOG_LEVEL": "debug", **env}
    done = subprocess.run([sys.executable, "-m", "distillguard.cli", "worker"], env=full, capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode != 0, output[-2000:]
    return output


def test_secrets_absent_from_logs_metrics_endpoints_and_topics(pipeline, tmp_path):
    events = demo_events(seed=11, users=20, campaign_events=400)
    prompts = {e["prompt"] for e in events if len(e["prompt"]) >= 24}
    worker = pipeline.start_worker(DG_KAFKA_SASL_USERNAME="dg-worker", DG_KAFKA_SASL_PASSWORD=KAFKA_SECRET,
                                   DG_CLICKHOUSE_USER="dg", DG_CLICKHOUSE_PASSWORD=CLICKHOUSE_SECRET,
                                   DG_LOG_LEVEL="debug")
    pipeline.produce(list(iter_encoded(events)) + [(b"bad", b"{not json")])
    pipeline.wait_processed(worker, len(events) + 1)

    served = {path: _get(worker.url + path) for path in
              ("/health", "/metrics", "/summary", "/alerts", "/query/tables", "/query/state?key=demo_sweeper",
               "/dashboard/")}
    alerts = pipeline.consume_all(pipeline.settings.alerts_topic)
    assert alerts, "the sweep should have raised an alert"
    worker.stop()
    log_text = worker.log_path.read_text(errors="replace")
    assert "DEBUG" in log_text or "debug" in log_text.lower()  # the most talkative level was on

    for secret in SECRETS:
        assert secret not in log_text
        for path, body in served.items():
            assert secret not in body, path
        assert not [m for m in alerts if secret.encode() in m.value()]

    # No prompt text at rest: not in alerts, the per-key state changelog or the link records
    # (the DLQ keeps a bad record's bytes on purpose: it is the evidence of what was sent).
    changelog = pipeline.consume_all(f"{pipeline.settings.app_id}-key-state-changelog")
    links = pipeline.consume_all(pipeline.settings.links_topic, expect=None)
    assert changelog and links
    for records, what in ((alerts, "alerts"), (changelog, "changelog"), (links, "links")):
        blob = b"\n".join(m.value() or b"" for m in records)
        leaked = [p for p in prompts if p.encode() in blob]
        assert not leaked, (what, leaked[:3])
    for path in ("/summary", "/alerts", "/dashboard/"):
        assert not [p for p in prompts if p in served[path]], path


def test_secrets_absent_when_credentials_fail_at_startup(pipeline, tmp_path):
    # SASL/SCRAM the broker refuses: the worker gives up, saying why, without the password.
    output = _run_failing_worker(pipeline, tmp_path, "sasl", DG_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                                 DG_KAFKA_SASL_MECHANISM="SCRAM-SHA-512", DG_KAFKA_SASL_USERNAME="dg-worker",
                                 DG_KAFKA_SASL_PASSWORD=KAFKA_SECRET)
    assert "SASL" in output
    assert KAFKA_SECRET not in output
    # A ClickHouse server URL carrying the password, and nothing listening there.
    port = free_port()
    output = _run_failing_worker(pipeline, tmp_path, "clickhouse",
                                 DG_CLICKHOUSE_URL=f"http://dg:{CLICKHOUSE_SECRET}@127.0.0.1:{port}/distillguard")
    assert "cannot open ClickHouse at http://127.0.0.1:" in output
    assert CLICKHOUSE_SECRET not in output
    output = _run_failing_worker(pipeline, tmp_path, "clickhouse2", DG_CLICKHOUSE_USER="dg",
                                 DG_CLICKHOUSE_PASSWORD=CLICKHOUSE_SECRET,
                                 DG_CLICKHOUSE_URL=f"http://127.0.0.1:{port}/distillguard")
    assert CLICKHOUSE_SECRET not in output
