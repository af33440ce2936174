"""Exculpated detections (``contracts.alert.is_exculpated``): replay routes them as the workers
do (recorded, not among the alerts), ``--send-exculpated`` as workers with DG_SEND_EXCULPATED."""
from __future__ import annotations

import json
from datetime import timedelta

from distillguard.contracts.alert import is_exculpated
from distillguard.replay import run_replay
from tests.unit.models.test_products import T0, app_traffic, event_doc, sweep


def _stream(tmp_path):
    """A homework app on a 400-day account (its own incident is held at info by its product
    evidence) beside a key sweeping the same wrapper at machine pace (pages)."""
    docs = app_traffic(150, key="app", build=event_doc) + sweep(200, T0 + timedelta(hours=1), key="sweeper",
                                                                  build=event_doc)
    docs.sort(key=lambda d: d["ts"])
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_exculpated_detections_are_recorded_apart_and_paging_alerts_are_not(tmp_path):
    events = _stream(tmp_path)
    summary = run_replay(events, tmp_path / "alerts.jsonl", progress=False, clusters=False,
                         exculpated_path=tmp_path / "exculpated.jsonl")
    alerts, held = _read(tmp_path / "alerts.jsonl"), _read(tmp_path / "exculpated.jsonl")
    assert held and all(is_exculpated(a) for a in held)
    assert {a["entity_id"] for a in held} == {"app"}
    assert {r["signal"] for r in held[0]["reasons"]} >= {"exculpatory"}
    assert alerts and {a["entity_id"] for a in alerts} == {"sweeper"}
    assert not any(is_exculpated(a) for a in alerts)
    assert (summary.alerts, summary.exculpated) == (len(alerts), len(held))

    sent = run_replay(events, tmp_path / "all.jsonl", progress=False, clusters=False, send_exculpated=True)
    every = _read(tmp_path / "all.jsonl")
    assert sorted(a["alert_id"] for a in every) == sorted(a["alert_id"] for a in alerts + held)
    assert (sent.alerts, sent.exculpated) == (len(every), len(held))
