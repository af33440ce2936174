"""The commands read their settings through settings objects: a bad value stops a command with
exit 2 and the variable and field named (no traceback); the feedback commands' own settings."""
from __future__ import annotations

import pytest


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


@pytest.mark.parametrize("command, variable", [
    (["migrate"], "DG_CLICKHOUSE_BATCH_ROWS"), (["dashboard"], "DG_CLICKHOUSE_BATCH_ROWS"),
    (["evidence", "key:k1", "--out", "OUT"], "DG_CLICKHOUSE_BATCH_ROWS"), (["produce", "EVENTS"], "DG_PARTITIONS"),
    (["ack", "k1"], "DG_ROUTER_PARTITIONS"), (["packer"], "DG_PACKER_MAX_EVENTS"),
])
def test_every_command_stops_on_a_bad_setting_naming_it(monkeypatch, tmp_path, capsys, command, variable):
    from distillguard import cli

    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, "not-a-number")
    command = [str(tmp_path / part) if part in ("OUT", "EVENTS") else part for part in command]
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"distillguard {command[0]}: ") and f"{variable} (field " in err, err
    assert not (tmp_path / "clickhouse").exists()  # it stopped before opening anything
