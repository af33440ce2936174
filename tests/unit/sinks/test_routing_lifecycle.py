"""Incident lifecycle: one incident per entity, escalation, ack/resolve, auto-resolve, expiry, resolve owed."""
from __future__ import annotations

import json

from distillguard.sinks.routing import lifecycle
from distillguard.sinks.routing.lifecycle import mark_resolve_posted, on_alert, on_feedback, on_tick, owes_resolve

T0 = 1_770_000_000_000


def _alert(config, make_alert, state, alert, now=T0):
    return on_alert(state, alert, now_ms=now, partition=3, lifecycle=config.lifecycle)


def test_one_incident_per_entity_and_updates_do_not_renotify(config, make_alert):
    opened = _alert(config, make_alert, None, make_alert(score=0.6))
    assert opened.change == "opened"
    state = opened.state
    assert state["dedup_key"] == "dg:key:k1:1" and state["version"] == 1 and state["partition"] == 3
    assert not owes_resolve(state, 0)
    # Same severity, small score change, even a new detector incident id: an update, no page.
    again = _alert(config, make_alert, state, make_alert(score=0.65, n=2), now=T0 + 1000)
    assert again.change == "updated" and again.state["dedup_key"] == "dg:key:k1:1"
    assert again.state["version"] == 1
    assert again.state["updated_ms"] == T0 + 1000
    assert json.loads(lifecycle.encode(again.state)) == again.state  # plain JSON, no pickles


def test_escalation_on_severity_score_or_cluster_growth(config, make_alert):
    state = _alert(config, make_alert, None, make_alert(score=0.6)).state
    up = _alert(config, make_alert, state, make_alert(severity="critical", score=0.61))
    assert up.change == "escalated" and "severity warning -> critical" in up.reason
    assert up.state["version"] == 2 and up.state["prev_severity"] == "warning"
    assert state["version"] == 1  # the caller's dict is untouched

    scored = _alert(config, make_alert, state, make_alert(score=0.71))
    assert scored.change == "escalated" and scored.reason.startswith("score")

    cluster = make_alert("c1", entity_type="cluster", score=0.4, keys=["a", "b", "c", "d"])
    cstate = _alert(config, make_alert, None, cluster).state
    grown = _alert(config, make_alert, cstate, make_alert("c1", entity_type="cluster", score=0.4,
                                                          keys=list("abcde")))
    assert grown.change == "updated"  # 5 < 4 * 1.5
    grown = _alert(config, make_alert, grown.state, make_alert("c1", entity_type="cluster", score=0.4,
                                                               keys=list("abcdef")))
    assert grown.change == "escalated" and "grew from 4 to 6" in grown.reason


def test_ack_keeps_the_incident_active_and_a_resolve_is_owed_until_posted(config, make_alert):
    state = _alert(config, make_alert, None, make_alert(severity="critical")).state
    acked = on_feedback(state, "ack", now_ms=T0 + 5, lifecycle=config.lifecycle, actor="alice", reason="looking")
    assert acked.change == "acknowledged" and acked.state["status"] == "acknowledged"
    assert not owes_resolve(acked.state, 0)  # still firing in Alertmanager: it has no acknowledge
    resolved = on_feedback(acked.state, "resolve", now_ms=T0 + 9, lifecycle=config.lifecycle, actor="alice")
    assert resolved.state["status"] == "resolved" and "alice" in resolved.state["resolution"]
    assert owes_resolve(resolved.state, 0) and owes_resolve(resolved.state, 1)
    mark_resolve_posted(resolved.state, 1)  # one replica took it, the other is owed it still
    assert owes_resolve(resolved.state, 0) and not owes_resolve(resolved.state, 1)
    mark_resolve_posted(resolved.state, 0)
    assert not owes_resolve(resolved.state, 0)
    reopened = _alert(config, make_alert, resolved.state, make_alert(severity="critical", ts="2026-02-01T11:00:00Z"))
    assert reopened.change == "opened" and not any(owes_resolve(reopened.state, i) for i in (0, 1))
    assert on_feedback(reopened.state, "resolve", now_ms=T0 + 20, lifecycle=config.lifecycle).state["am_res"] == 0


def test_auto_resolve_after_quiet_then_expiry_bounds_the_table(config, make_alert):
    state = _alert(config, make_alert, None, make_alert()).state
    assert on_tick(state, now_ms=T0 + 59_000, lifecycle=config.lifecycle).change == "none"
    quiet = on_tick(state, now_ms=T0 + 60_000, lifecycle=config.lifecycle)
    assert quiet.change == "resolved" and quiet.state["resolution"].startswith("auto-resolved")
    assert on_tick(quiet.state, now_ms=T0 + 60_000 + 599_000, lifecycle=config.lifecycle).change == "none"
    assert on_tick(quiet.state, now_ms=T0 + 60_000 + 600_000, lifecycle=config.lifecycle).change == "expired"


def test_reopen_after_resolve_gets_a_new_dedup_key(config, make_alert):
    state = _alert(config, make_alert, None, make_alert()).state
    resolved = on_feedback(state, "resolve", now_ms=T0, lifecycle=config.lifecycle).state
    later = "2026-02-01T11:00:00Z"
    same_incident = _alert(config, make_alert, resolved, make_alert(severity="critical", ts=later), now=T0 + 10)
    assert same_incident.change == "opened" and same_incident.state["dedup_key"] == "dg:key:k1:1:r1"
    new_incident = _alert(config, make_alert, resolved, make_alert(n=2, ts=later), now=T0 + 10)
    assert new_incident.state["dedup_key"] == "dg:key:k1:2"


def test_an_old_alert_read_again_neither_reopens_nor_rewinds(config, make_alert):
    state = _alert(config, make_alert, None, make_alert(score=0.6)).state
    newer = _alert(config, make_alert, state, make_alert(score=0.65, ts="2026-02-01T10:05:00Z")).state
    replay = _alert(config, make_alert, newer, make_alert(score=0.6), now=T0 + 50)  # the first alert again
    assert replay.change == "updated" and replay.state["score"] == 0.65  # facts not rewound
    assert replay.state["updated_ms"] == T0 + 50  # still counts as activity
    resolved = on_feedback(replay.state, "resolve", now_ms=T0 + 60, lifecycle=config.lifecycle).state
    again = _alert(config, make_alert, resolved, make_alert(severity="critical", ts="2026-02-01T10:05:00Z"))
    assert again.change == "ignored"  # a restarted router re-reading it does not page again


def test_false_positive_mutes_the_entity_until_it_expires(config, make_alert):
    state = _alert(config, make_alert, None, make_alert()).state
    fp = on_feedback(state, "false_positive", now_ms=T0, lifecycle=config.lifecycle, actor="bob").state
    assert fp["status"] == "resolved" and fp["resolution"].startswith("false positive")
    assert _alert(config, make_alert, fp, make_alert(severity="critical"), now=T0 + 1000).change == "ignored"
    assert on_tick(fp, now_ms=T0 + 1_000_000, lifecycle=config.lifecycle).change == "none"  # kept while muted
    later = T0 + 3_600_000
    assert _alert(config, make_alert, fp, make_alert(severity="critical", ts="2026-02-01T12:00:00Z"),
                  now=later).change == "opened"


def test_long_ids_give_bounded_dedup_keys():
    key = lifecycle.dedup_key_for("cluster:" + "x" * 400)
    assert len(key) <= 200 and key == lifecycle.dedup_key_for("cluster:" + "x" * 400)
