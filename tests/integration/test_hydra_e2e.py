"""A hydra spread over many keys raises one cluster alert naming them, on the real broker."""
from __future__ import annotations

import time

from distillguard.demo_traffic import demo_events, hydra_events, iter_encoded


def test_hydra_clusters_alert_once_naming_members(pipeline):
    infra = hydra_events(seed=31, keys=25, per_key=12, shared_payment=True)
    proxy = hydra_events(seed=32, keys=25, per_key=12, start_hour=3.0, shared_payment=False)
    background = demo_events(seed=33, users=40, campaign_events=0)
    events = sorted(infra + proxy + background, key=lambda e: e["ts"])
    worker = pipeline.start_worker()
    pipeline.produce(list(iter_encoded(events)))
    pipeline.wait_processed(worker, len(events))

    clusters = [a for a in pipeline.alerts() if a["entity_type"] == "cluster"]
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
