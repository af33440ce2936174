"""Feedback reaches the detector workers: a false positive suppresses its entity's alerts, and
every feedback record is stored in ClickHouse (once, though re-read)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from distillguard.devtools.demo_traffic import demo_events, iter_encoded
from distillguard.contracts.feedback import Feedback
from distillguard.feedback import produce_feedback


def test_false_positive_feedback_suppresses_alerts_and_is_stored(pipeline):
    topic = f"feedback-{uuid.uuid4().hex[:8]}"
    kafka = {"bootstrap.servers": pipeline.broker.bootstrap}
    admin = AdminClient(kafka)
    for future in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        future.result(15)
    # Marked before the worker starts: the worker reads the topic before it scores anything.
    produce_feedback(kafka, topic, Feedback.new("key", "demo_sweeper", "false_positive",
                                                reason="our own red team", actor="alice"))
    worker = pipeline.start_worker(DG_FEEDBACK_TOPIC=topic)
    events = demo_events(seed=11, users=40, campaign_events=500)
    pipeline.produce(list(iter_encoded(events)))
    pipeline.wait_processed(worker, len(events))
    # Feedback while running is followed too (and stored); this one through the CLI.
    cli = subprocess.run([sys.executable, "-m", "distillguard.cli", "ack", "cluster:c-1", "--reason", "on it",
                          "--actor", "bob", "--topic", topic],
                         env={**os.environ, "DG_KAFKA_BOOTSTRAP": pipeline.broker.bootstrap},
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "ack cluster:c-1" in cli.stderr, cli.stderr

    deadline, tables = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        tables = worker.get("/query/tables")
        if tables["feedback"] >= 2:
            break
        time.sleep(0.5)
    assert tables["feedback"] == 2

    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    suppressed = re.search(r'distillguard_alerts_suppressed_total\{entity_type="key"\} (\S+)', metrics)
    assert suppressed and float(suppressed.group(1)) >= 1  # the sweeper would have alerted
    alerts = pipeline.alerts(timeout=10)
    assert "demo_sweeper" not in {a["entity_id"] for a in alerts}
    stored = worker.get("/alerts?limit=100")["alerts"]
    assert "demo_sweeper" not in {a["entity_id"] for a in stored}
