"""Which events become link records, and what a record says of its event."""
from __future__ import annotations

from distillguard.models.clusters import ClusterDetector


def test_short_answered_styled_events_do_not_make_a_member():
    from distillguard.models.clusters import link_record
    from distillguard.models.events import parse_event
    from distillguard.models.pipeline import KeyPipeline

    def record(tokens: int):
        raw = ('{"schema":"llm.request.v1","event_id":"e1","ts":"2026-02-01T00:00:00Z","api_key_id":"k",'
               '"account_id":"a","model":"m","prompt":"You have access to the following tools: search. q1",'
               '"usage":{"input_tokens":20,"output_tokens":%d}}' % tokens)
        event = parse_event(raw.encode())
        return link_record(event, KeyPipeline().step(None, event))

    assert record(40).style < ClusterDetector().config.min_style <= record(600).style


