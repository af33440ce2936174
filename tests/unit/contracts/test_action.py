"""The action contract (distill.action.v1) as a type: what the router sends reads back the same;
what a gateway could not act on is a BadAction, returned, never raised."""
from __future__ import annotations

import json

import pytest

from distillguard.contracts.action import Action, BadAction
from distillguard.sinks.routing import actions
from distillguard.sinks.routing.routes import ActionPolicy

STATE = {"status": "open", "version": 2, "dedup_key": "dg:cluster:c1", "alert_id": "cluster:c1",
         "entity_type": "cluster", "entity_id": "c1", "keys": ["k1", "k2", "k3"], "members": 3,
         "severity": "critical", "score": 0.93, "reasons": []}


def test_what_the_router_sends_reads_back_as_the_same_action():
    policy = ActionPolicy.model_validate({"rules": [{"action": "throttle"}]})
    record = actions.next_action(dict(STATE), policy, now_ms=1_770_000_000_000)
    messages = actions.pages(record, page_keys=2)
    assert [Action.parse(m.to_bytes()) for m in messages] == messages
    assert [json.loads(m.to_bytes())["api_key_ids"] for m in messages] == [["k1", "k2"], ["k3"]]


@pytest.mark.parametrize("change", [{"schema": "distill.action.v2"}, {"action": "ban"}, {"api_key_ids": []},
                                    {"api_key_ids": "k1"}, {"version": 0}, {"page": True}, {"severity": "loud"},
                                    {"score": "high"}, {"entity_type": "org"}, {"incident": ""}])
def test_a_message_a_gateway_could_not_act_on_is_data(change):
    good = json.loads(actions.pages(actions.next_action(
        dict(STATE), ActionPolicy.model_validate({"rules": [{"action": "throttle"}]}), 1))[0].to_bytes())
    assert isinstance(Action.parse(json.dumps(good).encode()), Action)
    bad = Action.parse(json.dumps({**good, **change}).encode())
    assert isinstance(bad, BadAction) and bad.reason
    assert isinstance(Action.parse(b"{not json"), BadAction) and isinstance(Action.parse(b"[1]"), BadAction)
