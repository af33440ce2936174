"""A content cohort whose members show a real product's evidence on their own traffic.

A coding CLI's developers on new accounts send machine-paced tool output that does not
overlap, free-form text like a tool-use harvest's: the cohort named them with the harvest's
heads beside them (stress-agent-newcomers: 34 of 60 developers paged at critical). Each key's
own incident says whether its traffic is a product's (``LinkRecord.product``); the cohort's
incident follows its members as the cluster's does (``models.exculpation``).
"""
from __future__ import annotations

import dataclasses

import pytest

from distillguard.contracts.alert import is_exculpated
from distillguard.models.clusters import ClusterDetector
from distillguard.models.constants import ProductStatus
from distillguard.models.exculpation import shows_product

from .test_cohort import cohort_alerts, link_records, sweep

# 60 young keys enrolled half an hour apart, 12 plain items each: a critical cohort (48+ members)
WAVE = sweep(60, 12, enrol_hours=0.5)


def keys(*numbers: int) -> set[str]:
    return {f"key{k:03d}" for k in numbers}


def with_product(records: list, status_of) -> list:
    """The wave's link records, each saying what ``status_of(key, key_events)`` says of its key's
    product evidence."""
    return [dataclasses.replace(rec, product=status_of(rec.api_key_id, rec.key_events))
            for rec in records if rec is not None]


def cohort_replay(records: list) -> list[tuple[int, dict]]:
    """(index of the record that raised it, alert) of each cohort alert."""
    clusters = ClusterDetector()
    return [(i, alert) for i, rec in enumerate(records) for alert in cohort_alerts(clusters.observe_link(rec))]


def reasons(alert: dict) -> dict:
    return {r["signal"]: r["value"] for r in alert["reasons"]}


def test_a_paging_cohort_leaves_out_the_members_that_show_a_products_evidence():
    developers = keys(*range(0, 60, 2))  # every other member: an agent's steps held or pending
    records = with_product(link_records(WAVE), lambda key, n: (
        ProductStatus.HOLDS if n > 10 else ProductStatus.PENDING) if key in developers else ProductStatus.NONE)
    found = [alert for _, alert in cohort_replay(records)]
    assert found, "no cohort incident"
    last = found[-1]
    assert set(last["api_key_ids"]) == keys(*range(1, 60, 2))
    assert not developers & {key for alert in found for key in alert["api_key_ids"]}
    # paged on the 30 it lists, under critical_members: a warning, no longer critical
    assert last["severity"] == "warning"
    why = reasons(last)
    assert why["cohort_members"] == 30 and why["members_excused_as_products"] == 30
    # what the wave swept is judged on every member: its items are all 60 members' requests
    assert why["cohort_items_covered"] > 30 * 12


def test_the_same_wave_without_product_evidence_pages_every_member_at_critical():
    # Guard on the test above: the same records with no product status name all 60, critical.
    found = [alert for _, alert in cohort_replay(with_product(link_records(WAVE), lambda key, n: ProductStatus.NONE))]
    assert found[-1]["severity"] == "critical" and len(found[-1]["api_key_ids"]) == 60
    assert "members_excused_as_products" not in reasons(found[-1])


def test_a_cohort_of_products_only_is_held_at_info_and_pages_at_once_when_a_member_turns():
    turned, turns_at = "key007", 11  # its 11th request on: no agent's steps any more
    records = with_product(link_records(WAVE), lambda key, n: ProductStatus.NONE if key == turned and n >= turns_at
                           else ProductStatus.PENDING if n <= 4 else ProductStatus.HOLDS)
    found = cohort_replay(records)
    first_paging = next(i for i, (_, alert) in enumerate(found) if alert["severity"] != "info")
    held = [alert for _, alert in found[:first_paging]]
    assert held, "no incident held at info before the member turned"
    for alert in held:
        assert is_exculpated(alert), "recorded as an exculpated detection, not sent"
        why = reasons(alert)
        assert why["exculpatory"] == "product_members" and why["cohort_members"] == len(alert["api_key_ids"])
    # the turned member's record that first says so raises the page, naming it alone
    at, paging = found[first_paging]
    assert records[at].api_key_id == turned and records[at].key_events == turns_at
    assert paging["severity"] == "warning" and paging["api_key_ids"] == [turned]
    assert paging["alert_id"] == held[0]["alert_id"]  # the same incident escalates
    why = reasons(paging)
    assert why["cohort_members"] == 1  # every other member named so far is excused, and said to be
    assert why["members_excused_as_products"] >= len(held[-1]["api_key_ids"]) - 1 > 0


def test_a_paged_cohort_is_not_held_at_info_again_when_its_listed_member_shows_evidence_again():
    # key007 loses the evidence for two requests, then shows it again: on-call was paged for
    # the incident, which stays as last sent (no update lists the products, none goes to info).
    turned = "key007"
    records = with_product(link_records(WAVE), lambda key, n: ProductStatus.NONE if key == turned and n in (9, 10)
                           else ProductStatus.HOLDS)
    found = [alert for _, alert in cohort_replay(records)]
    first_paging = next(i for i, alert in enumerate(found) if alert["severity"] != "info")
    assert found[first_paging]["api_key_ids"] == [turned]
    assert all(alert["severity"] != "info" for alert in found[first_paging:])
    assert all(alert["api_key_ids"] == [turned] for alert in found[first_paging:])


@pytest.mark.parametrize("status", [ProductStatus.EVALUATION_PENDING, ProductStatus.FIRST_USERS_PENDING],
                         ids=["an evaluation's first run", "an organisation key's first requests each opening"])
def test_pending_evidence_that_an_item_sweep_shows_too_excuses_no_cohort_member(status):
    # A first run's pending evaluation is a harvest's traffic until its re-run; an organisation
    # key's first requests each opening a conversation (an app's first users, pending for a
    # cluster) is what an item sweep's requests are, one conversation per item (stress-attack-shift:
    # a proxy hydra's heads of 5-8 requests on aged organisation accounts).
    found = [alert for _, alert in cohort_replay(with_product(link_records(WAVE), lambda key, n: status))]
    assert found[-1]["severity"] == "critical" and len(found[-1]["api_key_ids"]) == 60
    assert shows_product(status) == (status == ProductStatus.FIRST_USERS_PENDING)  # a cluster's member: excused
