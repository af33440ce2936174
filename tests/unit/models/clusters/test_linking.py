"""Linking: one link value's members, and the workers' partitioned link-values stage."""
from __future__ import annotations

import dataclasses

import pytest

from distillguard.models.clusters import ClusterDetector, LinkMembers, SenderClock, link_step

from .conftest import T0, feed, rec, split_stage


def test_partitioned_link_values_stage_finds_the_same_clusters_as_the_detector_alone():
    infra = [dataclasses.replace(rec(f"i{k}", i, pf="pf-x"), output_tokens=700) for i in range(10) for k in range(15)]
    proxy = [dataclasses.replace(rec(f"p{k}", i, head=777, asn=64500, ua=9), output_tokens=700)
             for i in range(10) for k in range(12)]
    users = [rec(f"u{k}", i, style=0.0, pf="pf-x") for i in range(10) for k in range(5)]
    records = sorted(infra + proxy + users, key=lambda r: r.ts_ms)
    alone = feed(ClusterDetector(), records)
    split = split_stage(records, ClusterDetector())

    def incidents(alerts):
        return {a["alert_id"]: frozenset(a["api_key_ids"]) for a in alerts}

    assert incidents(split) == incidents(alone) and len(incidents(alone)) == 2
    assert not any(k.startswith("u") for a in split for k in a["api_key_ids"])


@pytest.mark.parametrize("records_lag", [50, 10_000], ids=["records a few ticks late", "every join first"])
def test_joins_that_arrive_before_the_keys_records_still_name_every_member(records_lag):
    # A payment ring of plainly worded keys and a proxy hydra: the joins of their link values
    # reach the cluster detector before the keys' own records (a loaded worker). The members
    # they name are known from the join on, not dropped as untracked.
    ring = [dataclasses.replace(rec(f"r{k}", i, style=0.0, pf="pf-ring"), output_tokens=700)
            for i in range(12) for k in range(20)]
    proxy = [dataclasses.replace(rec(f"p{k}", i, head=777, asn=64500, ua=9), output_tokens=700)
             for i in range(10) for k in range(12)]
    users = [rec(f"u{k}", i, style=0.0) for i in range(10) for k in range(5)]
    records = sorted(ring + proxy + users, key=lambda r: r.ts_ms)
    in_order = split_stage(records, ClusterDetector())
    late = split_stage(records, ClusterDetector(), records_lag=records_lag)

    def named(alerts, prefix):
        return {k for a in alerts for k in a["api_key_ids"] if k.startswith(prefix)}

    # (the last ring member to qualify waits for the incident's next update interval)
    assert len(named(in_order, "r")) >= 18 and len(named(in_order, "p")) == 12
    assert named(late, "r") == named(in_order, "r") and named(late, "p") == named(in_order, "p")
    assert {a["alert_id"] for a in late} == {a["alert_id"] for a in in_order}
    assert not named(late, "u")


def test_link_members_round_trip_as_bytes_and_stay_bounded():
    link = LinkMembers(first_ts=T0)
    for k in range(40):
        link_step(link, "head", f"k{k}", T0 + k, window_ms=3_600_000, min_coordinated=4, max_members=32)
    assert link.common and not link.members  # a value shared by too many keys stops linking
    link = LinkMembers(first_ts=T0)
    link_step(link, "pf", "a", T0, window_ms=60_000, min_coordinated=4, max_members=32)
    assert link_step(link, "pf", "b", T0 + 1, window_ms=60_000, min_coordinated=4, max_members=32) == ["a"]
    again = LinkMembers.from_bytes(link.to_bytes())
    assert again == link and again.last_ts == T0 + 1
    # a member idle past the window is dropped when the value is next touched
    link_step(again, "pf", "c", T0 + 120_000, window_ms=60_000, min_coordinated=4, max_members=32)
    assert list(again.members) == ["c"]




HOUR = 3_600_000


def _expired(clock: SenderClock, partition, value: LinkMembers, now_s: float, idle_ms: int = 2 * HOUR) -> bool:
    """The link-values stage's rule (streams/clusters_stage.py expire_link_values)."""
    return value.last_ts < clock.horizon(partition, now_s, idle_ms)


def test_a_lagging_sender_keeps_the_values_its_keys_still_join():
    # Input partition 0 lags at the hydra's hour while partition 1 runs five hours ahead. The
    # hydra's frame, last joined at T0, is idle against partition 1's time but not against
    # partition 0's, whose next hydra key still joins it: it must not be forgotten yet.
    clock = SenderClock(quiet_after_s=300, senders=(0, 1), now_s=0)
    frame = LinkMembers(first_ts=T0)
    for k, key in enumerate(("h1", "h2", "h3")):
        link_step(frame, "head", key, T0 + k, window_ms=HOUR, min_coordinated=4, max_members=32)
        clock.observe(3, sender=0, ts_ms=T0 + k, now_s=1)
    clock.observe(3, sender=1, ts_ms=T0 + 5 * HOUR, now_s=2)
    assert not _expired(clock, 3, frame, now_s=3)
    assert frame.last_ts < clock.newest - 2 * HOUR  # ... by which the frame was forgotten here
    assert link_step(frame, "head", "h4", T0 + 600_000, window_ms=HOUR, min_coordinated=4,
                     max_members=32) == ["h1", "h2", "h3"]
    clock.observe(3, sender=0, ts_ms=T0 + 600_000, now_s=4)
    # Partition 0 then falls quiet (its backlog done, or its keys gone): after quiet_after_s
    # it no longer holds the clock, and the table stays bounded.
    assert not _expired(clock, 3, frame, now_s=200)
    assert _expired(clock, 3, frame, now_s=400) and _expired(clock, None, frame, now_s=400)


def test_the_sender_clock_waits_for_senders_not_yet_heard_and_per_partition():
    clock = SenderClock(quiet_after_s=60, senders=(0, 1), now_s=100)
    clock.observe(0, sender=0, ts_ms=T0 + 10 * HOUR, now_s=101)
    old = LinkMembers(first_ts=T0)
    # sender 1 has not spoken yet (its partition not handed over): nothing expires ...
    assert not _expired(clock, 0, old, now_s=102) and clock.reached(None, now_s=102) == -1
    # ... until it has been quiet for quiet_after_s since the clock started
    assert _expired(clock, 0, old, now_s=161)
    # Each link-values partition has its own clock: sender 1 lagging on partition 5 holds
    # partition 5's values, not partition 0's.
    clock.observe(5, sender=1, ts_ms=T0, now_s=162)
    clock.observe(5, sender=0, ts_ms=T0 + 10 * HOUR, now_s=162)
    clock.observe(0, sender=1, ts_ms=T0 + 10 * HOUR, now_s=162)
    assert clock.reached(5, now_s=163) == T0 and clock.reached(0, now_s=163) == T0 + 10 * HOUR
    assert clock.reached(None, now_s=163) == T0  # (a value whose partition is not known: the slowest of all)


def test_a_join_names_the_members_nearest_in_event_time_to_the_joining_key():
    # A frame shared by a hydra's first keys (k*, T0) and, hours later, by keys of another wave
    # (l*). A key of the first hydra from a lagging input partition (m, T0 + 10 min) reaches the
    # link-values stage after the l* keys: the join must name the k* keys, enrolled with it (the
    # cluster detector links weak kinds only between keys enrolled together), not the most
    # recent arrivals. (Naming the 4 most recent split a proxy hydra into two paged incidents
    # in 1 of 16 simulated partition orders of test_hydra_e2e's traffic; nearest: 0 of 16.)
    link = LinkMembers(first_ts=T0)
    params = dict(window_ms=4 * HOUR, min_coordinated=4, max_members=256)
    for k in range(6):
        link_step(link, "head", f"k{k}", T0 + k * 60_000, **params)
    for k in range(4):
        link_step(link, "head", f"l{k}", T0 + 3 * HOUR + k, **params)
    assert link.linking
    assert set(link_step(link, "head", "m", T0 + 10 * 60_000, **params)) == {"k2", "k3", "k4", "k5"}
    assert set(link_step(link, "head", "n", T0 + 3 * HOUR + 60_000, **params)) == {"l0", "l1", "l2", "l3"}


def test_members_that_join_after_the_sweep_are_named_on_a_later_join_of_any_key():
    # As on a later record of any key (test_detector.py), when the link-values stage links: the
    # last thing the cluster agent sees may be joins, which carry event time on too.
    det = ClusterDetector(regrow=10.0, update_interval_ms=600_000)
    first = [rec(f"k{k}", i, pf="pf-x") for i in range(10) for k in range(10)]
    late = [rec(f"late{k}", 12 + i, pf="pf-x") for i in range(3) for k in range(3)]  # 3 minutes, then silence
    assert not any("late0" in a["api_key_ids"] for a in split_stage(first + late, det))
    hour_later = T0 + 80 * 60_000
    update = [a for a in det.observe_join("acct", "elsewhere-b", ["elsewhere-a"], hour_later, [hour_later])
              if a["entity_type"] == "cluster"]
    assert len(update) == 1 and {"late0", "late1", "late2"} <= set(update[0]["api_key_ids"])


def _two_parts_of_one_hydra(det: ClusterDetector, *, bridged: bool) -> list[dict]:
    """Twelve keys of one hydra as the cluster agent sees them from the partitioned stage: each
    half joined by its own network (link-values partition 0, judged first), the two halves by
    their shared card (partition 1, judged later: ``bridged`` says whether it has been yet)."""
    halves = {"a": [f"a{k}" for k in range(6)], "b": [f"b{k}" for k in range(6)]}
    alerts = []
    for i in range(12):
        for keys in halves.values():
            for key in keys:
                alerts += det.observe_link(rec(key, i), link=False)
    end = T0 + 11 * 60_000
    for half, keys in halves.items():
        for key in keys[1:]:
            alerts += det.observe_join("net", key, [keys[0]], end, [end])
    alerts += det.observe_progress(0, end)
    if bridged:
        alerts += det.observe_join("pf", "b0", ["a0"], end, [end])
        alerts += det.observe_progress(1, end)
    return [a for a in alerts if a["entity_type"] == "cluster"]


def test_a_new_incident_waits_until_every_link_values_partition_has_judged_its_members_values():
    # Opened as soon as each half qualifies, the one hydra pages as two incidents (what a CI run
    # of test_hydra_e2e caught when the card's partition ran behind the network's).
    at_once = _two_parts_of_one_hydra(ClusterDetector(), bridged=True)
    assert len({a["alert_id"] for a in at_once}) == 2
    # Held until both partitions report: one incident naming all twelve keys.
    det = ClusterDetector(link_partitions=2)
    assert _two_parts_of_one_hydra(det, bridged=False) == []  # partition 1 has not reported yet
    det = ClusterDetector(link_partitions=2)
    held = _two_parts_of_one_hydra(det, bridged=True)
    assert len({a["alert_id"] for a in held}) == 1
    assert set(held[-1]["api_key_ids"]) == {f"{h}{k}" for h in "ab" for k in range(6)}


def test_a_held_incident_opens_when_its_partitions_have_nothing_waiting_or_never_report():
    det = ClusterDetector(link_partitions=2)
    assert _two_parts_of_one_hydra(det, bridged=False) == []
    # every sender of partition 1 caught up with its input: nothing more is coming
    opened = det.observe_progress(1, None)
    assert len({a["alert_id"] for a in opened}) == 2  # (the card never joined them: two campaigns)
    # A partition that never reports holds a new incident for stage_hold_max_ms of event time at most.
    det = ClusterDetector(link_partitions=2, stage_hold_max_ms=30 * 60_000)
    assert _two_parts_of_one_hydra(det, bridged=False) == []
    late = [a for i in range(12, 45) for a in det.observe_link(rec("a0", i), link=False)
            if a["entity_type"] == "cluster"]
    assert {k[0] for a in late for k in a["api_key_ids"]} == {"a"}  # on its own record, 30 min on
    assert {k[0] for a in det.observe_progress(0, T0 + 45 * 60_000) for k in a["api_key_ids"]} == {"b"}
