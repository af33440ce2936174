"""The feedback commands (entity names, durations, settings) and evidence references."""
from __future__ import annotations

import pytest

from distillguard.evidence import incident_alert_id
from distillguard.feedback import split_entity


@pytest.mark.parametrize("entity, expected", [
    ("k1", ("key", "k1")), ("cluster:abc", ("cluster", "abc")), ("account:a:b", ("account", "a:b")),
    ("weird:id", ("key", "weird:id")),
])
def test_split_entity(entity, expected):
    assert split_entity(entity) == expected


@pytest.mark.parametrize("reference, expected", [
    ("key:k1:3", ("alert_id", "key:k1:3")), ("dg:key:k1:3", ("alert_id", "key:k1:3")),
    ("dg:key:k1:3:r2", ("alert_id", "key:k1:3")), ("cluster:c1", ("alert_id", "cluster:c1")),
    ("dg:cluster:c1", ("alert_id", "cluster:c1")), ("key:k1", ("entity", "key:k1")),
])
def test_evidence_accepts_alert_ids_dedup_keys_and_entities(reference, expected):
    assert incident_alert_id(reference) == expected


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)])
def test_snooze_durations(text, seconds):
    from distillguard.cli import _duration_s

    assert _duration_s(text) == seconds


def _sent_feedback(monkeypatch) -> list:
    """What the feedback commands would produce (the topic is neither created nor written)."""
    from distillguard import feedback
    from distillguard.streams import router

    sent = []
    monkeypatch.setattr(router, "router_topics", lambda *args, **kwargs: None)
    monkeypatch.setattr(feedback, "produce_feedback", lambda config, topic, record: sent.append((topic, record)))
    return sent


def test_the_feedback_commands_take_actor_and_topic_from_their_settings(monkeypatch):
    from distillguard import cli

    sent = _sent_feedback(monkeypatch)
    monkeypatch.setenv("DG_ACTOR", "oncall-ana")
    monkeypatch.setenv("DG_FEEDBACK_TOPIC", "feedback.x")
    assert cli.main(["ack", "cluster:c1"]) == 0
    assert cli.main(["resolve", "k1", "--actor", "bo"]) == 0
    assert [(topic, record.entity_id, record.actor) for topic, record in sent] \
        == [("feedback.x", "c1", "oncall-ana"), ("feedback.x", "k1", "bo")]


def test_a_bad_DG_ACTOR_stops_the_command_naming_the_variable(monkeypatch, capsys):
    from distillguard import cli

    sent = _sent_feedback(monkeypatch)
    monkeypatch.setenv("DG_ACTOR", "x" * 201)  # longer than a record keeps: it would be cut silently
    assert cli.main(["ack", "k1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distillguard ack: ") and "DG_ACTOR (field actor)" in err and "x" * 201 not in err
    assert not sent
