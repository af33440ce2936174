"""What the code produces, validated against the in-repo contracts (``contracts/*.schema.json``).

The request events our own generator writes, the alerts ``replay`` raises and the action records
the router sends to the gateway must each pass their JSON Schema, so the schemas a gateway team
codes against say what the code does. A field the code adds without documenting it fails here.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from distillguard.devtools.demo_traffic import demo_events, hydra_events
from distillguard.contracts.request_event import RequestEvent, parse_event
from distillguard.replay import run_replay
from distillguard.sinks.routing import actions, lifecycle
from distillguard.sinks.routing.routes import ActionPolicy, Lifecycle

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
SCHEMA_FILES = {"llm.request.v1": "request-event.v1.schema.json", "distill.alert.v1": "alert.v1.schema.json",
                "distill.action.v1": "action.v1.schema.json", "llm.request.batch.v1": "request-batch.v1.schema.json"}

# jsonschema checks "date-time" only with an optional package installed; without it the format is
# silently accepted. Checked here instead: RFC 3339 requires the offset ("Z" or +hh:mm).
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the "type" keyword reports it
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None and "T" in value


def validator(schema_id: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((CONTRACTS / SCHEMA_FILES[schema_id]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == schema_id
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


def assert_valid(schema_id: str, documents: list[dict]) -> None:
    check = validator(schema_id)
    documented = set(check.schema["properties"])
    for doc in documents:
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(doc)]
        assert not errors, (doc.get("schema"), errors)
        assert set(doc) <= documented, f"fields missing from {SCHEMA_FILES[schema_id]}: {set(doc) - documented}"


@pytest.fixture(scope="module")
def stream() -> list[dict]:
    """A small labelled-by-construction stream: benign users, a sweep, a card-sharing and a proxy hydra."""
    events = demo_events(seed=5, users=25, campaign_events=250)
    events += hydra_events(seed=6, keys=12, per_key=12, shared_payment=True)
    events += hydra_events(seed=8, keys=12, per_key=12, start_hour=3.0, shared_payment=False)
    return sorted(events, key=lambda e: e["ts"])


def test_generated_request_events_follow_the_request_contract_and_parse(stream):
    assert_valid("llm.request.v1", stream)
    assert all(isinstance(parse_event(json.dumps(e).encode()), RequestEvent) for e in stream)


def test_packed_envelopes_follow_the_batch_contract(stream):
    from distillguard.streams.envelope import pack

    records = [(e["api_key_id"].encode(), json.dumps(e).encode(), offset) for offset, e in enumerate(stream)]
    records += [(None, None, len(records)), (b"\xff", b"x" * 3000, len(records) + 1)]
    assert_valid("llm.request.batch.v1", [json.loads(pack(3, records[i:i + 100], max_item_bytes=2048))
                                          for i in range(0, len(records), 100)])


def test_replayed_alerts_follow_the_alert_contract(stream, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in stream))
    run_replay(events, tmp_path / "alerts.jsonl", progress=False)
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert {a["entity_type"] for a in alerts} >= {"key", "cluster"}  # both kinds were produced and checked
    assert_valid("distill.alert.v1", alerts)


# Built here, not from a routes file: the action policy and lifecycle are all an action record needs.
POLICY = ActionPolicy.model_validate({"allow_suspend": True, "rules": [
    {"match": {"severity": ["critical"], "entity_type": ["cluster"]}, "action": "suspend"},
    {"match": {"severity": ["critical"]}, "action": "require_verification"},
    {"match": {"severity": ["warning"]}, "action": "perturb_outputs"},
    {"match": {}, "action": "throttle"}]})
LIFECYCLE = Lifecycle()


def _alert(entity_type: str, entity_id: str, severity: str, score: float, keys: list[str]) -> dict:
    return {"schema": "distill.alert.v1", "alert_id": f"{entity_type}:{entity_id}:1", "ts": "2026-02-01T10:00:00Z",
            "entity_type": entity_type, "entity_id": entity_id, "api_key_ids": keys, "score": score,
            "severity": severity, "events_seen": 40, "detector": "test/1",
            "reasons": [{"signal": "extraction_style_share", "value": 0.8, "baseline": 0.05, "weight": 1.0}]}


def _wire(action) -> dict:
    """An action message as a gateway reads it off distill.actions."""
    return json.loads(action.to_bytes())


def _incident_actions(alerts: list[dict]) -> list:
    """Every action record of one incident: each alert in turn, then a resolve."""
    state, records, now = None, [], 1
    for alert in alerts:
        state = lifecycle.on_alert(state, alert, now_ms=now, partition=0, lifecycle=LIFECYCLE).state
        records.append(actions.next_action(state, POLICY, now + 1))
        actions.mark_acted(state, records[-1])
        now += 10
    state = lifecycle.on_feedback(state, "false_positive", now_ms=now, lifecycle=LIFECYCLE).state
    records.append(actions.next_action(state, POLICY, now + 1))
    return records


def test_action_records_follow_the_action_contract():
    members = [f"key_{i:03d}" for i in range(8)]
    records = _incident_actions([_alert("key", "key_7", "info", 0.4, ["key_7"]),
                                 _alert("key", "key_7", "warning", 0.7, ["key_7"])])
    records += _incident_actions([_alert("cluster", "c9", "warning", 0.6, members[:4]),
                                  _alert("cluster", "c9", "critical", 0.9, members)])
    assert [r.action for r in records] == ["throttle", "perturb_outputs", "release",
                                           "perturb_outputs", "suspend", "release"]
    assert_valid("distill.action.v1", [_wire(page) for record in records for page in actions.pages(record)])


@pytest.mark.parametrize("broken", [
    {"action": "ban"},            # not an action a gateway knows
    {"api_key_ids": []},          # an action on no key
    {"version": 0},
    {"ts": "2026-02-01T10:00:00"},  # no offset
    {"dedup_key": "cluster:c9"},  # not ours
    {"page": 0},                  # pages count from 1
])
def test_the_action_contract_rejects_what_a_gateway_could_not_act_on(broken):
    (record,) = map(_wire, actions.pages(_incident_actions([_alert("key", "k1", "warning", 0.7, ["k1"])])[0]))
    check = validator("distill.action.v1")
    assert check.is_valid(record)
    assert not check.is_valid({**record, **broken})


def test_a_big_incident_is_enforced_on_every_key_in_pages_that_follow_the_contract():
    """A 1,201-key hydra: every key reaches the gateway, 500 at most a message (not the first 50)."""
    members = [f"key_{i:04d}" for i in range(1201)]
    records = _incident_actions([_alert("cluster", "c1", "critical", 0.9, members)])
    assert [r.action for r in records] == ["suspend", "release"]
    messages = [_wire(page) for record in records for page in actions.pages(record, page_keys=500)]
    assert_valid("distill.action.v1", messages)
    suspend = [m for m in messages if m["action"] == "suspend"]
    assert [(m["page"], m["pages"], len(m["api_key_ids"])) for m in suspend] == [(1, 3, 500), (2, 3, 500), (3, 3, 201)]
    assert [k for m in suspend for k in m["api_key_ids"]] == members
    assert {m["action_id"] for m in suspend} == {records[0].action_id} and {m["member_keys"] for m in suspend} == {1201}


def test_the_gateway_example_restricts_every_key_of_a_paged_incident_and_lifts_them_on_release():
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "examples" / "gateway_actions_consumer.py"
    spec = importlib.util.spec_from_file_location("gateway_actions_consumer", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    members = [f"key_{i:03d}" for i in range(200)]
    records = _incident_actions([_alert("cluster", "c2", "warning", 0.6, members[:120]),
                                 _alert("cluster", "c2", "critical", 0.9, members)])
    (other,) = map(_wire, actions.pages(_incident_actions([_alert("key", "key_007", "warning", 0.7, ["key_007"])])[0]))
    policy = example.GatewayPolicy()
    assert policy.apply(other)
    opened, escalated, release = ([_wire(page) for page in actions.pages(r, page_keys=64)] for r in records)
    assert all(policy.apply(page) for page in opened + escalated)
    assert policy.enforced == {k: "suspend" for k in members}
    assert not any(policy.apply(page) for page in opened + escalated)  # re-sent after a restart: nothing new
    assert all(policy.apply(page) for page in release)
    assert policy.enforced == {"key_007": "perturb_outputs"}  # the other incident's hold stays


def test_the_gateway_producer_example_writes_the_request_contract():
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "examples" / "gateway_producer.py"
    spec = importlib.util.spec_from_file_location("gateway_producer", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    from datetime import timezone

    minimal = example.request_event(api_key_id="k", account_id="a", model="m", prompt="p",
                                    ts=datetime(2026, 2, 1, 12, 0, 0, 123000, tzinfo=timezone.utc))
    full = example.request_event(api_key_id="k", account_id="a", model="m", prompt="p", ts=datetime.now(timezone.utc),
                                 org_id="o", system_prompt="s", conversation_id="c", turn_index=2,
                                 params={"max_tokens": 10, "temperature": 0.5}, input_tokens=3, output_tokens=4,
                                 latency_ms=9, ip="203.0.113.7", asn=64500, user_agent="ua", country="FR",
                                 account_created_at=datetime(2025, 3, 1, tzinfo=timezone.utc),
                                 payment_fingerprint="pf", tier="t")
    assert_valid("llm.request.v1", [minimal, full])
    assert minimal["ts"] == "2026-02-01T12:00:00.123Z"
    assert all(isinstance(parse_event(json.dumps(e).encode()), RequestEvent) for e in (minimal, full))
