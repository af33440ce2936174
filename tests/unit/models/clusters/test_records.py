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




def _processed_events():
    """Generated traffic through the per-key pipeline: ordinary users and an app, a sweeping
    key, a hydra on one card and a proxy hydra (frames and timing only); (event, result) each."""
    import json

    from distillguard.devtools.demo_traffic import demo_events, hydra_events
    from distillguard.models.events import parse_event
    from distillguard.models.pipeline import KeyPipeline

    events = sorted(demo_events(seed=41, users=30, campaign_events=300, hydra_keys=20)
                    + hydra_events(seed=42, keys=20, per_key=12, start_hour=3.0, shared_payment=False),
                    key=lambda e: e["ts"])
    pipeline, states, processed = KeyPipeline(), {}, []
    for raw in events:
        event = parse_event(json.dumps(raw).encode())
        result = pipeline.step(states.get(event.api_key_id), event)
        states[event.api_key_id] = result.state
        processed.append((event, result))
    return processed


def test_records_under_the_linking_style_give_the_alerts_of_records_with_every_link_value():
    # Records under LINK_MIN_STYLE are built without their closing frame, network and client
    # (nothing reads them): the cluster detector must raise exactly the alerts it raises on
    # the same records with every link value computed.
    import dataclasses

    from distillguard.models.clusters import link_record
    from distillguard.models.clusters.records import ip_prefix, tail_frame
    from distillguard.models.constants import LINK_MIN_STYLE
    from distillguard.models.features import _h64

    lean, full = [], []
    for offset, (event, result) in enumerate(_processed_events()):
        rec = link_record(event, result, partition=0, offset=offset)
        if rec is None:
            continue
        lean.append(rec)
        full.append(dataclasses.replace(rec, tail=tail_frame(event.prompt), net=ip_prefix(event.client_ip),
                                        asn=event.asn, ua_hash=_h64(event.user_agent) if event.user_agent else None))
    under = [r for r in lean if r.style < LINK_MIN_STYLE]
    assert under and any(r.payment_fingerprint for r in under)  # the lean records were exercised
    assert all(r.tail == -1 and r.net is None and r.ua_hash is None for r in under)
    detector_lean, detector_full = ClusterDetector(), ClusterDetector()
    lean_alerts = [a for r in lean for a in detector_lean.observe_link(r)]
    full_alerts = [a for r in full for a in detector_full.observe_link(r)]
    assert {a["entity_type"] for a in full_alerts} >= {"cluster"}
    assert lean_alerts == full_alerts
