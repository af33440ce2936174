"""The feedback contract (distill.feedback.v1): made, written, read back; bad records are data."""
from __future__ import annotations

import json

import pytest

from distillguard.contracts.feedback import BadFeedback, Feedback, FeedbackError
from distillguard.errors import DistillguardError


def _wire(feedback: Feedback, **changes) -> bytes:
    record = {**feedback.to_dict(), **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None}).encode()


def test_feedback_round_trip_and_validation():
    record = Feedback.new("cluster", "c-9", "false_positive", reason="red team", actor="al", now=1_770_000_000)
    parsed = Feedback.parse(record.to_bytes())
    assert parsed == record
    assert parsed.ts == "2026-02-02T02:40:00.000Z" and parsed.ts_ms == 1_770_000_000_000
    assert json.loads(record.to_bytes())["schema"] == "distill.feedback.v1"
    for bad in (b"not json", b"[]", _wire(record, action="delete"), _wire(record, entity_type="org"),
                _wire(record, ts="yesterday"), _wire(record, entity_id=None),
                _wire(record, ts="2026-02-02T02:40:00"),  # no offset: which day is it?
                _wire(record, reason=["not", "text"]), _wire(record, actor=7)):
        assert isinstance(Feedback.parse(bad), BadFeedback), bad
    with pytest.raises(FeedbackError):
        Feedback.new("key", "k", "snooze")


def test_a_record_from_another_producer_gets_an_id_and_bounded_text():
    parsed = Feedback.parse(json.dumps({"entity_type": "key", "entity_id": "k", "action": "ack",
                                        "ts": "2026-02-02T02:40:00Z", "reason": "r" * 5000}).encode())
    assert parsed.feedback_id == "key:k:2026-02-02T02:40:00Z" and parsed.actor == ""
    assert len(parsed.reason) == 2000  # the column's bound, applied where the record is read


def test_snooze_records_carry_their_end():
    record = Feedback.new("key", "k", "snooze", actor="al", now=1_770_000_000, until=1_770_003_600)
    parsed = Feedback.parse(record.to_bytes())
    assert parsed.until == "2026-02-02T03:40:00.000Z" and parsed.until_ms == 1_770_003_600_000
    assert isinstance(Feedback.parse(_wire(record, until="soon")), BadFeedback)
    with pytest.raises(FeedbackError):
        Feedback.new("key", "k", "ack", until=1.0)


def test_unsnooze_records_parse_and_carry_no_end():
    record = Feedback.new("cluster", "c1", "unsnooze", actor="al", now=1_770_000_000)
    parsed = Feedback.parse(record.to_bytes())
    assert parsed.action == "unsnooze" and parsed.until_ms is None and "until" not in parsed.to_dict()
    with pytest.raises(FeedbackError):
        Feedback.new("cluster", "c1", "unsnooze", until=1.0)


def test_a_bad_record_is_data_a_bad_command_an_error():
    bad = Feedback.parse(b"not json")
    assert not isinstance(bad, BaseException)  # returned, never raised: a consumer counts and skips it
    assert bad.reason == str(bad) == "feedback is not JSON"
    assert issubclass(FeedbackError, DistillguardError)
