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




DAY = 86_400_000


def _account_alerts(det: ClusterDetector, created_ms: int | None, keys: int = 7) -> list[dict]:
    records = [rec(f"a{k}", i, account="acct-app", account_created_ms=created_ms) for i in range(4) for k in range(keys)]
    return [a for r in records for a in det.observe_link(r) if a["entity_type"] == "account"]


def test_an_account_incident_of_a_mature_account_raises_info_and_says_why():
    young = _account_alerts(ClusterDetector(account_min_keys=3), T0 - 3 * DAY)
    mature = _account_alerts(ClusterDetector(account_min_keys=3), T0 - 400 * DAY)
    unknown = _account_alerts(ClusterDetector(account_min_keys=3), None)
    assert [a["severity"] for a in young] == ["warning"] * 3 + ["critical"] * 2 == [a["severity"] for a in unknown]
    # the same keys, named alike: only the page changes (its keys' own incidents still page)
    assert [a["api_key_ids"] for a in mature] == [a["api_key_ids"] for a in young]
    assert {a["severity"] for a in mature} == {"info"}
    reasons = {r["signal"]: r for r in mature[-1]["reasons"]}
    assert reasons["account_age_days"]["value"] == 400.0 and reasons["account_age_days"]["baseline"] == 30.0
    assert "mature account" in reasons["severity_capped"]["value"]
    # the age is the provider's: at the alert's own event time
    assert _account_alerts(ClusterDetector(account_min_keys=3), T0 - 29 * DAY)[0]["severity"] == "warning"


def _one_cluster(records) -> list[dict]:
    return feed(ClusterDetector(), sorted(records, key=lambda r: r.ts_ms) + [rec("later", 120)])


def test_a_cluster_of_one_mature_accounts_keys_is_that_accounts_incident_at_info():
    mature, young = T0 - 400 * DAY, T0 - 3 * DAY
    one_account = _one_cluster([rec(f"k{k}", i, account="acct-app", account_created_ms=mature)
                                for i in range(10) for k in range(20)])
    assert one_account and {a["severity"] for a in one_account} == {"info"}
    assert "severity_capped" in {r["signal"] for r in one_account[-1]["reasons"]}
    # keys of many mature accounts (a hydra on aged accounts) or of one young account still page
    many = _one_cluster([rec(f"k{k}", i, pf="pf-x", account_created_ms=mature) for i in range(10) for k in range(20)])
    young_one = _one_cluster([rec(f"k{k}", i, account="acct-new", account_created_ms=young)
                              for i in range(10) for k in range(20)])
    assert many[-1]["severity"] == "critical" == young_one[-1]["severity"]
    assert [a["api_key_ids"] for a in one_account] == [a["api_key_ids"] for a in young_one]


def test_a_cluster_of_a_few_mature_accounts_holding_many_keys_is_that_customers_incident_at_info():
    """A product run from an account per region or platform (20 keys in 4 mature accounts),
    linked across them by its wrapper and its card: the customer's incident, at info. The same
    keys an account each (a hydra on aged accounts), or with one account young, page."""
    mature, young = T0 - 400 * DAY, T0 - 3 * DAY

    def customer(account_of, created_of) -> list[dict]:
        return _one_cluster([rec(f"k{k}", i, pf="pf-x", account=account_of(k), account_created_ms=created_of(k))
                             for i in range(10) for k in range(20)])

    four = customer(lambda k: f"acct-{k % 4}", lambda k: mature)
    assert four and {a["severity"] for a in four} == {"info"}
    reasons = {r["signal"]: r["value"] for r in four[-1]["reasons"]}
    assert reasons["severity_capped"].startswith("4 mature accounts holding ")
    assert reasons["account_age_days"] >= 30
    one_young = customer(lambda k: f"acct-{k % 4}", lambda k: young if k % 4 == 3 else mature)
    per_head = customer(lambda k: f"acct-{k}", lambda k: mature)
    assert one_young[-1]["severity"] == "critical" == per_head[-1]["severity"]
    assert [a["api_key_ids"] for a in four] == [a["api_key_ids"] for a in one_young]


def test_a_cluster_whose_members_are_all_real_products_is_held_at_info_and_says_why():
    """Two customers' apps on one tutoring template share a frame in lockstep; each key's own
    traffic is a product's (models.products, LinkRecord.product): their cluster is theirs, at
    info. One member without that evidence (a key that turned, or a head among them) pages."""
    mature = T0 - 400 * DAY

    def apps(product_of) -> list[dict]:
        return _one_cluster([dataclasses.replace(rec(f"k{k}", i, pf="pf-shared", account_created_ms=mature),
                                                 product=product_of(k, i)) for i in range(10) for k in range(20)])

    products = apps(lambda k, i: 1)
    assert products and {a["severity"] for a in products} == {"info"}
    reasons = {r["signal"]: r["value"] for r in products[-1]["reasons"]}
    assert reasons["exculpatory"] == "product_members"
    assert reasons["members_with_product_evidence"] == len(products[-1]["api_key_ids"])
    # one key whose records stopped carrying the evidence, from its 5th on: the cluster pages
    turned = apps(lambda k, i: int(k != 7 or i < 5))
    assert turned[-1]["severity"] == "critical"
    assert "exculpatory" not in {r["signal"] for r in turned[-1]["reasons"]}
    # the same keys named alike: only the page changes
    assert [a["api_key_ids"] for a in products] == [a["api_key_ids"] for a in apps(lambda k, i: 0)]


def test_a_paging_cluster_does_not_name_the_members_whose_own_traffic_is_a_products():
    """Agent products send the same tool output in lockstep with a harvest's heads running the
    same tools: linked, the cluster pages for the heads, and names them only. A product member
    is named again once its records stop carrying the evidence."""
    mature = T0 - 400 * DAY

    def mixed(product_of) -> list[dict]:
        return _one_cluster([dataclasses.replace(rec(f"k{k}", i, pf="pf-shared", account_created_ms=mature),
                                                 product=product_of(k, i)) for i in range(10) for k in range(20)])

    heads = {f"k{k}" for k in range(15, 20)}
    alerts = mixed(lambda k, i: int(k < 15))
    assert alerts[-1]["severity"] == "critical" and set(alerts[-1]["api_key_ids"]) == heads
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}
    assert reasons["members_excused_as_products"] == 15 and reasons["cluster_keys"] == 5
    # an app's or an agent's pending evidence excuses too (a new agent key's first tasks); an
    # evaluation's pending does not (until its re-run it is a harvest's traffic)
    assert set(mixed(lambda k, i: 2 if k < 15 else 0)[-1]["api_key_ids"]) == heads
    evaluations = mixed(lambda k, i: 3 if k < 15 else 0)
    assert len(evaluations[-1]["api_key_ids"]) == 20
    assert "members_excused_as_products" not in {r["signal"] for r in evaluations[-1]["reasons"]}


def test_an_incident_paged_before_its_members_show_product_evidence_keeps_paging():
    """The products-only cap holds a cluster at info from its start; an incident already paged
    is not capped later (its capped update would be an exculpated detection, recorded and not
    sent: on-call would never learn how it went on). While every member shows a product's
    evidence it has nobody to name who is not a product's, and sends nothing (an update would
    have named them all); once their evidence fails, its updates page and name them."""
    mature = T0 - 400 * DAY
    records = [dataclasses.replace(rec(f"k{k}", i, pf="pf-shared", account_created_ms=mature),
                                   product=int(4 <= i < 20)) for i in range(40) for k in range(60)]
    alerts = _one_cluster(records)
    assert alerts[0]["severity"] == "critical"
    first_named = set(alerts[0]["api_key_ids"])
    shown = [a for a in alerts if "2026-02-01T00:04" < a["ts"] < "2026-02-01T00:20"]
    assert all(set(a["api_key_ids"]) == first_named for a in shown), "no product member named while all show it"
    late = [a for a in alerts if a["ts"] > "2026-02-01T00:20"]
    assert late, "an update once the evidence failed"
    assert {a["severity"] for a in late} == {"critical"} and len(late[-1]["api_key_ids"]) == 60
    assert not {r["signal"] for a in alerts for r in a["reasons"]} & {"exculpatory", "severity_capped"}


def test_a_mature_accounts_cluster_joined_by_other_products_stays_at_info():
    """Held at info first as one mature account's incident, then by its products when another
    customer's app keys join it (the cap changes, the incident was never raised above info)."""
    mature = T0 - 400 * DAY
    # (their product evidence holds from their 6th request: the account's age held the first versions)
    first = [dataclasses.replace(rec(f"a{k}", i, pf="pf-shared", account="acct-one", account_created_ms=mature),
                                 product=int(i >= 5)) for i in range(10) for k in range(20)]
    joined = [dataclasses.replace(rec(f"b{k}", 20 + i, pf="pf-shared", account=f"acct-b{k}",
                                      account_created_ms=mature), product=1) for i in range(10) for k in range(20)]
    alerts = _one_cluster(first + joined)
    assert {a["severity"] for a in alerts} == {"info"}
    assert [r["signal"] for r in alerts[0]["reasons"]][-2:] == ["account_age_days", "severity_capped"]
    assert "b0" in alerts[-1]["api_key_ids"]
    assert "product_members" in {r["value"] for r in alerts[-1]["reasons"]}


def test_an_incident_with_excused_members_is_re_sent_only_when_it_names_more_or_escalates():
    """Its alert lists the members without a product's evidence; growth is judged on that
    count. Judged on every member named, each product key that qualified after the incident
    opened looked like growth and re-sent the same alert (dev-s1: one incident 144 times, not 31)."""
    mature = T0 - 400 * DAY
    heads = [dataclasses.replace(rec(f"head{k}", i, pf="pf-shared", account_created_ms=mature), product=0)
             for i in range(10) for k in range(5)]
    products = [dataclasses.replace(rec(f"app{k}", 12 + 2 * k + i, pf="pf-shared", account_created_ms=mature),
                                    product=1) for i in range(10) for k in range(15)]
    alerts = _one_cluster(heads + products)
    assert alerts and alerts[-1]["severity"] == "critical"
    assert set(alerts[-1]["api_key_ids"]) == {f"head{k}" for k in range(5)}
    rank = {"info": 1, "warning": 2, "critical": 3}
    for before, after in zip(alerts, alerts[1:]):
        assert set(after["api_key_ids"]) > set(before["api_key_ids"]) or \
            rank[after["severity"]] > rank[before["severity"]], (before["ts"], after["ts"])
