"""A hydra spread over many keys raises one cluster alert naming them, on the real broker."""
from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from distillguard.devtools.demo_traffic import demo_events, hydra_events, iter_encoded

from .conftest import metric, wait_for


@pytest.mark.parametrize("partitioned", ["true", "false"], ids=["link-values stage", "links in the cluster agent"])
def test_hydra_clusters_alert_once_naming_members(pipeline, partitioned):
    infra = hydra_events(seed=31, keys=25, per_key=12, shared_payment=True)
    proxy = hydra_events(seed=32, keys=25, per_key=12, start_hour=4.0, shared_payment=False)
    background = demo_events(seed=33, users=40, campaign_events=0)
    events = sorted(infra + proxy + background, key=lambda e: e["ts"])
    # Expiry every second, of values idle 2 hours of event time: the hydras are 3 hours apart
    # (so also beyond the detector's 2-hour enrollment window: the 8 input partitions are
    # processed at their own pace, and an infra key's record can reach a shared frame's
    # members after the proxy hydra's first records).
    worker = pipeline.start_worker(DG_LINK_VALUES_PARTITIONED=partitioned, DG_LINK_EXPIRY_INTERVAL_S="1",
                                   DG_LINK_IDLE_WINDOWS="2", DG_LINK_SENDER_QUIET_S="20")
    pipeline.produce(list(iter_encoded(events)))
    pipeline.wait_processed(worker, len(events))

    clusters = [a for a in pipeline.alerts() if a["entity_type"] == "cluster"]
    # the link values went through their own topic only when the stage is on
    consumer = Consumer({"bootstrap.servers": pipeline.broker.bootstrap, "group.id": "hydra-e2e-count"})
    try:
        topic = pipeline.settings.link_values_topic
        sent = 0
        if topic in consumer.list_topics(timeout=10).topics:
            sent = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                       for p in range(pipeline.settings.partitions))
    finally:
        consumer.close()
    assert (sent > 0) == (partitioned == "true"), sent
    for members, tag in ((infra, "infra"), (proxy, "proxy")):
        keys = {e["api_key_id"] for e in members}
        about = [a for a in clusters if set(a["api_key_ids"]) & keys]
        # One incident per hydra, updated as it grows: never a page per member key.
        assert len({a["alert_id"] for a in about}) == 1, (tag, {a["alert_id"] for a in about})
        named = set().union(*(a["api_key_ids"] for a in about))
        assert len(named & keys) >= 0.9 * len(keys), (tag, len(named & keys))
        assert not {k for k in named if k.startswith("demo_user_")}, "benign users pulled into a cluster"
    deadline = time.monotonic() + 30
    while True:  # the alert rows reach ClickHouse at the sink's next flush
        stored = {a["alert_id"] for a in worker.get("/alerts?limit=100")["alerts"] if a["entity_type"] == "cluster"}
        if len(stored) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stored == {a["alert_id"] for a in clusters}
    if partitioned == "true":
        # Every link-values partition told the cluster agent how far it had judged the values
        # (what a new incident waits for), the last time that all were judged.
        marks = [json.loads(m.value()) for m in pipeline.consume_all(pipeline.settings.links_topic)
                 if m.value().startswith(b'{"progress":')]
        last = {m["progress"]: m["judged_to"] for m in marks}
        assert set(last) == set(range(pipeline.settings.partitions)) and set(last.values()) == {None}, last
        # the first hydra's values expired (from a timer, outside any stream)
        wait_for(lambda: metric(worker, "distillguard_link_values_expired_total") > 0, "link values expired")
        assert worker.get("/health")["status"] == "ok"


@pytest.mark.parametrize("partitioned", ["true", "false"], ids=["link-values stage", "links in the cluster agent"])
def test_a_payment_ring_of_plain_prompts_alerts_once_as_a_warning(pipeline, partitioned):
    # A hydra on one card whose prompts read as ordinary instructions: no extraction style.
    ring = hydra_events(seed=41, keys=20, per_key=12, shared_payment=True)
    for i, event in enumerate(ring):
        event["prompt"] = f"Write a short essay about the history of city number {i}."
        event["usage"]["output_tokens"] = 600
    background = demo_events(seed=43, users=40, campaign_events=0)
    events = sorted(ring + background, key=lambda e: e["ts"])
    worker = pipeline.start_worker(DG_LINK_VALUES_PARTITIONED=partitioned)
    pipeline.produce(list(iter_encoded(events)))
    pipeline.wait_processed(worker, len(events))

    keys = {e["api_key_id"] for e in ring}

    def named() -> set:
        return set().union(*(a["api_key_ids"] for a in pipeline.alerts() if a["entity_type"] == "cluster"))

    # (the cluster agent reads the link records a flush tick after their events; with the
    # link-values stage they pass one more topic and table first: on a CI machine shared with
    # another test process that took over 60 s once)
    try:
        wait_for(lambda: len(named() & keys) >= 0.9 * len(keys), "the ring's keys named in a cluster alert",
                 timeout=150)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(named() & keys)} of {len(keys)} named; cluster alerts "
                             f"{[(a['alert_id'], a['severity'], len(a['api_key_ids'])) for a in pipeline.alerts() if a['entity_type'] == 'cluster']}; "
                             f"cluster errors {metric(worker, 'distillguard_cluster_errors_total')}") from None
    clusters = [a for a in pipeline.alerts() if a["entity_type"] == "cluster"]
    assert len({a["alert_id"] for a in clusters}) == 1
    assert {a["severity"] for a in clusters} == {"warning"}
    assert named() <= keys  # no background user pulled in
    reasons = {r["signal"]: r["value"] for r in clusters[-1]["reasons"]}
    assert reasons["accounts_sharing_a_payment_method"] >= 18 and reasons["joint_extraction_style_share"] == 0.0
    assert not [a for a in pipeline.alerts() if a["entity_type"] == "key"]  # no key looks like extraction
