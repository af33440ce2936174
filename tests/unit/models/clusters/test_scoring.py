"""What a cluster's and an account's alerts report."""
from __future__ import annotations

import dataclasses

from distillguard.models.clusters import ClusterDetector

from .conftest import T0, feed, rec


def test_cluster_alert_says_which_evidence_linked_the_keys():
    det = ClusterDetector()
    alerts = feed(det, [rec(f"k{k}", i, pf="pf-x") for i in range(10) for k in range(20)])
    linked_by = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}["linked_by"]
    assert linked_by.startswith("shared payment fingerprint x")


def test_cluster_alert_reports_how_young_the_member_accounts_are():
    det = ClusterDetector()
    created = T0 - 3 * 86_400_000  # 3 days before
    records = [rec(f"k{k}", i, pf="pf-x", account_created_ms=created) for i in range(10) for k in range(20)]
    reasons = {r["signal"]: r["value"] for r in feed(det, records)[-1]["reasons"]}
    assert reasons["median_account_age_days"] == 3.0


def test_account_holding_many_extraction_keys_raises_an_account_alert():
    det = ClusterDetector(account_min_keys=3)
    records = [rec(f"a{k}", i, account="acct-shared") for i in range(4) for k in range(4)]
    accounts = [a for r in records for a in det.observe_link(r) if a["entity_type"] == "account"]
    assert accounts and {a["alert_id"] for a in accounts} == {"account:acct-shared"}
    assert set(accounts[-1]["api_key_ids"]) >= {"a0", "a1", "a2"}


def test_account_with_one_key_is_not_accused():
    det = ClusterDetector(account_min_keys=3)
    records = [rec("solo", i, account="acct-solo") for i in range(50)]
    assert not [a for r in records for a in det.observe_link(r) if a["entity_type"] == "account"]


def test_cluster_alert_shows_a_split_sweep_and_how_close_its_heads_were_enrolled():
    # 12 heads enrolled over 11 minutes, each sweeping 4 of 48 topics; together all 48.
    records = [dataclasses.replace(rec(f"k{k}", k + i, pf="pf-x"), topic_bucket=4 * (4 * k + i % 4))
               for i in range(10) for k in range(12)]
    alerts = feed(ClusterDetector(), sorted(records, key=lambda r: r.ts_ms) + [rec("later", 120)])
    reasons = {r["signal"]: r for r in alerts[-1]["reasons"]}
    assert reasons["joint_topic_coverage"]["value"] == round(48 / 64, 3)
    assert reasons["joint_topic_coverage"]["baseline"] == round(4 / 64, 3)
    assert reasons["members_enrolled_within_minutes"]["value"] == 11.0


def test_a_split_sweep_scores_above_keys_that_each_sweep_everything():
    split = [dataclasses.replace(rec(f"s{k}", i, pf="pf-s"), topic_bucket=4 * (4 * k + i % 4))
             for i in range(10) for k in range(12)]
    whole = [dataclasses.replace(rec(f"w{k}", i, pf="pf-w"), topic_bucket=4 * i)  # each key: all 10 topics
             for i in range(10) for k in range(12)]
    alerts = feed(ClusterDetector(), sorted(split + whole, key=lambda r: r.ts_ms) + [rec("later", 120)])
    score = {a["api_key_ids"][0][0]: a["score"] for a in alerts}
    assert score["s"] > 0.85 and score["w"] < score["s"] - 0.15


