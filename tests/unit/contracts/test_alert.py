"""The alert contract as types: one severity order, one time format, Alert to_bytes / parse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.contracts.alert import Alert, BadAlert, Severity, alert_bytes, iso_ms, iso_time


def test_one_severity_order_with_ranks_and_wire_values():
    assert [s.value for s in Severity] == ["info", "warning", "critical"]
    assert [s.rank for s in Severity] == [1, 2, 3]
    assert [Severity.of_rank(r) for r in (1, 2, 3)] == list(Severity)
    assert Severity.rank_of("critical") == 3 and Severity.rank_of("page") == 0 and Severity.rank_of(None) == 0
    with pytest.raises(ValueError):
        Severity.of_rank(0)
    assert json.dumps({"severity": Severity.CRITICAL}) == '{"severity": "critical"}'


def test_one_time_format_milliseconds_utc_z():
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_769_904_000_999) == "2026-02-01T00:00:00.999Z"
    from datetime import datetime, timedelta, timezone

    plus_two = timezone(timedelta(hours=2))
    assert iso_time(datetime(2026, 2, 1, 2, 0, 0, 123_456, plus_two)) == "2026-02-01T00:00:00.123Z"


def test_a_detector_alert_round_trips_byte_for_byte():
    from distillguard.devtools.demo_traffic import demo_events
    from distillguard.models.events import parse_event
    from distillguard.models.pipeline import KeyPipeline

    pipeline, states, raised = KeyPipeline(), {}, []
    for raw in demo_events():
        event = parse_event(json.dumps(raw).encode())
        result = pipeline.step(states.get(event.api_key_id), event)
        states[event.api_key_id] = result.state
        if result.alert is not None:
            raised.append(result.alert)
    assert raised
    for record in raised:
        parsed = Alert.parse(alert_bytes(record))
        assert isinstance(parsed, Alert) and parsed.severity in Severity
        assert parsed.to_bytes() == alert_bytes(record)


@pytest.mark.parametrize("value, reason", [
    (b"not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"schema": "distill.alert.v0", "alert_id": "a"}', "schema"),
    (b'{"schema": "distill.alert.v1", "alert_id": "a", "entity_type": "key", "entity_id": "k"}', "severity"),
    (b'{"schema": "distill.alert.v1", "alert_id": "a", "entity_type": "key", "entity_id": "k", "severity": "page"}',
     "severity"),
])
def test_what_is_not_an_alert_is_data_with_the_reason(value, reason):
    parsed = Alert.parse(value)
    assert isinstance(parsed, BadAlert) and reason in parsed.reason


def test_fields_it_does_not_know_are_passed_on():
    record = {"schema": "distill.alert.v1", "alert_id": "account:a", "entity_type": "account", "entity_id": "a",
              "severity": "warning", "org_id": "acme"}
    parsed = Alert.parse(json.dumps(record).encode())
    assert parsed.extra == {"org_id": "acme"} and parsed.to_dict() == record


def test_every_alert_producer_builds_the_typed_alert():
    # one place says what an alert holds: a producer writing the dict by hand drifts from it
    root = Path(__file__).resolve().parents[3]
    by_hand = [str(path.relative_to(root)) for folder in ("models", "streams", "sinks", "distillguard")
               for path in (root / folder).rglob("*.py")
               if '"schema": "distill.alert.v1"' in path.read_text(encoding="utf-8")]
    assert by_hand == [], f"alerts built as dicts by hand in {by_hand}; use contracts.alert.Alert"
