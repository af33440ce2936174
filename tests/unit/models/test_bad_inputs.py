"""Every case of the bad-input corpus is rejected by ``parse_event`` with its exact reason class."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from distillguard.models.events import BadRecord, RequestEvent, parse_event
from distillguard.models.step import DeadLetter, RequestProcessor

_spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).parents[2] / "data" / "bad_inputs.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def reason_class(reason: str) -> str:
    # The worker's metric label and ClickHouse reason_class (models.step / sinks.clickhouse).
    return reason.split(":", 1)[0][:40]


def test_corpus_base_event_is_valid():
    assert isinstance(parse_event(corpus.enc(corpus.GOOD)), RequestEvent)


@pytest.mark.parametrize("name", sorted(corpus.CORPUS))
def test_bad_input_rejected_with_its_reason_class(name):
    raw, expected = corpus.CORPUS[name]
    result = parse_event(raw)
    assert isinstance(result, BadRecord), name
    assert reason_class(result.reason) == expected, result.reason
    assert result.raw == raw  # the original bytes, for the dead-letter topic


def test_reason_classes_are_low_cardinality():
    # A metric label must not carry sizes, offsets or values from the record.
    classes = {reason_class(parse_event(raw).reason) for raw, _ in corpus.CORPUS.values()}
    assert not [c for c in classes if any(ch.isdigit() for ch in c.replace("UTF-8", "").replace("16", ""))]


def test_worker_dead_letters_corpus_with_reason_header_and_original_bytes():
    proc = RequestProcessor(pipeline=None, source_topic="llm.requests")
    for offset, (name, (raw, expected)) in enumerate(sorted(corpus.CORPUS.items())):
        dead = proc.decode(raw, b"key_bad", 1, offset)
        assert isinstance(dead, DeadLetter), name
        headers = dict(dead.headers())
        assert reason_class(headers["dg.reason"].decode()) == expected, name
        assert headers["dg.source.offset"] == str(offset).encode() and dead.value == raw
    assert sum(proc.counters.dead_letter_reasons.values()) == len(corpus.CORPUS)


def test_event_days_ahead_of_the_worker_clock_is_dead_lettered():
    raw = corpus.future_event()
    assert isinstance(parse_event(raw), RequestEvent)  # well-formed, in the 2000..2100 window
    dead = RequestProcessor(pipeline=None, source_topic="t", max_future_ms=86_400_000).decode(raw, None, 0, 0)
    assert isinstance(dead, DeadLetter) and reason_class(dead.reason) == "ts" and "in the future" in dead.reason


def test_duplicate_event_id_is_deduplicated_not_dead_lettered():
    from distillguard.models.pipeline import KeyPipeline

    proc = RequestProcessor(KeyPipeline(), source_topic="t")
    event = proc.decode(corpus.enc(corpus.GOOD), b"key_bad", 0, 0)
    first = proc.step(None, event, 0)
    again = proc.step(first.state, proc.decode(corpus.enc(corpus.GOOD), b"key_bad", 0, 1), 1)
    assert first.row is not None and again.duplicate and again.row is None
    assert proc.counters.duplicates == 1 and proc.counters.dead_letters == 0
