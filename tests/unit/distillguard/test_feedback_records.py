"""Feedback records (distill.feedback.v1) and evidence references: pure parsing."""
from __future__ import annotations

import json

import pytest

from distillguard.evidence import incident_alert_id
from distillguard.feedback import BadFeedback, FeedbackError, feedback_record, parse_feedback, split_entity


def test_feedback_round_trip_and_validation():
    record = feedback_record("cluster", "c-9", "false_positive", reason="red team", actor="al", now=1_770_000_000)
    parsed = parse_feedback(json.dumps(record).encode())
    assert parsed["ts"] == "2026-02-02T02:40:00.000Z" and parsed["ts_ms"] == 1_770_000_000_000
    assert parsed["entity_type"] == "cluster" and parsed["action"] == "false_positive"
    for bad in (b"not json", b"[]", json.dumps({**record, "action": "delete"}).encode(),
                json.dumps({**record, "entity_type": "org"}).encode(),
                json.dumps({**record, "ts": "yesterday"}).encode(),
                json.dumps({k: v for k, v in record.items() if k != "entity_id"}).encode()):
        assert isinstance(parse_feedback(bad), BadFeedback), bad
    with pytest.raises(FeedbackError):
        feedback_record("key", "k", "snooze")


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


def test_snooze_records_carry_their_end():
    record = feedback_record("key", "k", "snooze", actor="al", now=1_770_000_000, until=1_770_003_600)
    parsed = parse_feedback(json.dumps(record).encode())
    assert parsed["until"] == "2026-02-02T03:40:00.000Z" and parsed["until_ms"] == 1_770_003_600_000
    assert isinstance(parse_feedback(json.dumps({**record, "until": "soon"}).encode()), BadFeedback)
    with pytest.raises(FeedbackError):
        feedback_record("key", "k", "snooze")
    with pytest.raises(FeedbackError):
        feedback_record("key", "k", "ack", until=1.0)


def test_unsnooze_records_parse_and_carry_no_end():
    record = feedback_record("cluster", "c1", "unsnooze", actor="al", now=1_770_000_000)
    parsed = parse_feedback(json.dumps(record).encode())
    assert parsed["action"] == "unsnooze" and "until" not in parsed and "until_ms" not in parsed
    with pytest.raises(FeedbackError):
        feedback_record("cluster", "c1", "unsnooze", until=1.0)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)])
def test_snooze_durations(text, seconds):
    from distillguard.cli import _duration_s

    assert _duration_s(text) == seconds


def test_a_bad_record_is_data_a_bad_command_an_error():
    from distillguard.errors import DistillguardError

    bad = parse_feedback(b"not json")
    assert not isinstance(bad, BaseException)  # returned, never raised: a consumer counts and skips it
    assert bad.reason == str(bad) == "feedback is not JSON"
    assert issubclass(FeedbackError, DistillguardError)


def _sent_feedback(monkeypatch) -> list[tuple[str, dict]]:
    """What the feedback commands would produce (the topic is neither created nor written)."""
    from distillguard import feedback
    from distillguard.streams import router

    sent: list[tuple[str, dict]] = []
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
    assert [(topic, record["entity_id"], record["actor"]) for topic, record in sent] \
        == [("feedback.x", "c1", "oncall-ana"), ("feedback.x", "k1", "bo")]


def test_a_bad_DG_ACTOR_stops_the_command_naming_the_variable(monkeypatch, capsys):
    from distillguard import cli

    sent = _sent_feedback(monkeypatch)
    monkeypatch.setenv("DG_ACTOR", "x" * 201)  # longer than a record keeps: it would be cut silently
    assert cli.main(["ack", "k1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distillguard ack: ") and "DG_ACTOR (field actor)" in err and "x" * 201 not in err
    assert not sent
