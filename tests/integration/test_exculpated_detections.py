"""A real product's incident, held at info by its exculpatory evidence, is recorded in
ClickHouse (``exculpated``) and counted, not sent on the alerts topic; a sweep beside it pages."""
from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import timedelta

from tests.unit.models.test_products import T0, app_traffic, event_doc, sweep


def _encoded(docs: list[dict]) -> list[tuple[bytes, bytes]]:
    return [(d["api_key_id"].encode(), json.dumps(d).encode()) for d in sorted(docs, key=lambda d: d["ts"])]


def test_an_exculpated_detection_is_recorded_not_sent(pipeline):
    worker = pipeline.start_worker()
    docs = app_traffic(150, key="homework-app", build=event_doc) + sweep(
        200, T0 + timedelta(hours=1), key="sweeper", build=event_doc)
    pipeline.produce(_encoded(docs))
    pipeline.wait_processed(worker, len(docs))

    deadline, tables = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        tables = worker.get("/query/tables")
        if tables["exculpated"] >= 1 and tables["alerts"] >= 1:
            break
        time.sleep(0.5)
    assert tables["exculpated"] >= 1 and tables["alerts"] >= 1, tables

    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    held = re.search(r'distillguard_alerts_exculpated_total\{entity_type="key"\} (\S+)', metrics)
    assert held and float(held.group(1)) >= 1
    sent = {a["entity_id"] for a in pipeline.alerts(timeout=10)}
    assert "sweeper" in sent and "homework-app" not in sent
    stored = {a["entity_id"] for a in worker.get("/alerts?limit=100")["alerts"]}
    assert "sweeper" in stored and "homework-app" not in stored
