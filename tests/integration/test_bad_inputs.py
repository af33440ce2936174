"""The bad-input corpus through the real broker to a running worker: every record is
dead-lettered with its reason class and original bytes, the worker keeps processing."""
from __future__ import annotations

import importlib.util
import json
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Producer

_spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).parents[1] / "data" / "bad_inputs.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def test_bad_input_corpus_is_dead_lettered_and_the_worker_carries_on(pipeline):
    cases = {f"case-{i:02d}".encode(): (name, raw, expected)
             for i, (name, (raw, expected)) in enumerate(sorted(corpus.CORPUS.items()))}
    cases[b"future"] = ("3 days ahead of the worker clock", corpus.future_event(), "ts")
    cases[b"tombstone"] = ("no value", None, "empty record (no value)")
    duplicate = corpus.enc(corpus.good(event_id="ev_dup", api_key_id="key_dup"))
    after = corpus.enc(corpus.good(event_id="ev_after", api_key_id="key_after"))

    worker = pipeline.start_worker()
    producer = Producer({"bootstrap.servers": pipeline.broker.bootstrap, "message.max.bytes": 12_000_000})
    for key, (_, raw, _) in cases.items():
        producer.produce(pipeline.settings.requests_topic, key=key, value=raw)
    for raw in (duplicate, duplicate):  # the same event id twice: deduplicated, not dead-lettered
        producer.produce(pipeline.settings.requests_topic, key=b"key_dup", value=raw)
    producer.produce(pipeline.settings.requests_topic, key=b"key_after", value=after)
    assert producer.flush(30) == 0

    counters = pipeline.wait_processed(worker, len(cases) + 3)
    dead = pipeline.consume_all(pipeline.settings.dlq_topic, expect=len(cases))
    by_key = {m.key(): m for m in dead}
    assert len(dead) == len(cases) and set(by_key) == set(cases)
    for key, (name, raw, expected) in cases.items():
        message = by_key[key]
        headers = dict(message.headers())
        reason = headers["dg.reason"].decode()
        assert reason.split(":", 1)[0][:40] == expected, (name, reason)
        raw = raw or b""
        if len(raw) > 900_000:  # bigger than a Kafka message may be: a prefix, and what was cut
            assert message.value() == raw[:900_000], name
            assert headers["dg.truncated"] == b"1" and headers["dg.original.size"] == str(len(raw)).encode()
        else:
            assert (message.value() or b"") == raw, name  # the original bytes
            assert "dg.truncated" not in headers
        assert int(headers["dg.source.offset"]) >= 0 and headers["dg.source.topic"] == \
            pipeline.settings.requests_topic.encode()

    # Still alive, and it processed the good events after the corpus; the duplicate once.
    assert counters["dead_letters"] == len(cases)
    assert counters["processed"] == 2 and counters["duplicates"] == 1
    assert worker.get("/query/state?key=key_after")["info"]["events"] == 1
    assert worker.get("/query/state?key=key_dup")["info"]["events"] == 1
    # (the rows are stored at the next flush, up to DG_FLUSH_INTERVAL_S after the events)
    deadline = time.monotonic() + 30
    tables = worker.get("/query/tables")
    while (tables["events"], tables["dlq"]) != (2, len(cases)) and time.monotonic() < deadline:
        time.sleep(0.2)
        tables = worker.get("/query/tables")
    assert tables["events"] == 2 and tables["dlq"] == len(cases)
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    per_reason = {line.split('reason="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
                  for line in metrics.splitlines() if line.startswith("distillguard_dead_letters_total{")}
    expected_counts: dict[str, float] = {}
    for _, _, expected in cases.values():
        expected_counts[expected] = expected_counts.get(expected, 0) + 1
    assert per_reason == expected_counts
    assert json.loads(json.dumps(per_reason))  # label values are plain strings
