"""Evaluations: one item set re-run across models from a verified account is held at info;
its first run waits at info for the re-run, a bounded wait; nothing here is a free pass."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from distillguard.contracts.alert import is_exculpated
from distillguard.models.clusters import link_record
from distillguard.models.events import RequestEvent, parse_event
from distillguard.models.pipeline import DetectorConfig, KeyPipeline, decode_state
from distillguard.models.reruns import RERUN_SAMPLE, ItemReruns, item_fingerprint

T0 = datetime(2026, 2, 1, 9, tzinfo=timezone.utc)
SEVERITY = {"info": 1, "warning": 2, "critical": 3}
# a chain-of-thought harness: the answers are long, as a harvest's
FRAME = "Question: {q}\nLet's think step by step."
SUBJECTS = ["a train", "a tank", "a loan", "a triangle", "a pendulum", "a recipe", "a circuit", "a garden"]


def item(i: int) -> str:
    return FRAME.format(q=f"If {SUBJECTS[i % 8]} number {i} changes by {i % 7 + 2} units every {i % 5 + 1} hours, "
                          f"what is it after {i % 11 + 3} hours? (item {i})")


def event(i: int, ts: datetime, prompt: str, model: str = "model-a", key: str = "eval", tier: str = "enterprise",
          age_days: float = 700.0, org: str | None = "org-eval", temperature: float = 0.0,
          pf: str | None = None) -> RequestEvent:
    doc = {"schema": "llm.request.v1", "event_id": f"{key}-{i}", "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
           "api_key_id": key, "account_id": f"acct-{key}", "model": model, "prompt": prompt,
           "params": {"temperature": temperature, "max_tokens": 2048},
           "usage": {"input_tokens": 60, "output_tokens": 700},
           "account": {"created_at": (T0 - timedelta(days=age_days)).strftime("%Y-%m-%dT%H:%M:%SZ"), "tier": tier}}
    if pf is not None:
        doc["account"]["payment_fingerprint"] = pf
    if org is not None:
        doc["org_id"] = org
    parsed = parse_event(json.dumps(doc).encode())
    assert isinstance(parsed, RequestEvent), parsed
    return parsed


def evaluation(items: int, models=("model-a", "model-b", "model-c"), start: datetime = T0, first: int = 0,
               item_at=item, **account) -> list[RequestEvent]:
    """One item set run on each model in turn, each run a day after the last, at machine pace."""
    events = []
    for m, model in enumerate(models):
        at = start + timedelta(days=m)
        for i in range(items):
            events.append(event(first + len(events), at + timedelta(seconds=2 * i), item_at(i), model, **account))
    return events


def run(events, pipeline: KeyPipeline | None = None):
    """(every alert record, the sent ones: not exculpated) and the key's last state."""
    pipeline, state, alerts = pipeline or KeyPipeline(), None, []
    for offset, ev in enumerate(events):
        result = pipeline.step(state, ev, offset)
        state = result.state
        if result.alert:
            alerts.append(result.alert)
    return alerts, [a for a in alerts if not is_exculpated(a)], decode_state(state)


def worst(alerts) -> int:
    return max((SEVERITY[a["severity"]] for a in alerts), default=0)


# -- the re-run sample ------------------------------------------------------------------------
def _sample() -> SimpleNamespace:
    return SimpleNamespace(rerun_ids=[0] * RERUN_SAMPLE, rerun_meta=[0] * RERUN_SAMPLE, rerun_ew=0.0, rerun_hits=0.0)


def _learn(st, prompts, model, start_ms=0, key=b""):
    reruns = ItemReruns()
    for i, prompt in enumerate(prompts):
        reruns.learn_one(st, item_fingerprint(prompt, key), model, start_ms + 1000 * i)
    return reruns


def test_a_sweep_of_new_items_never_shows_a_rerun_and_its_sample_stays_bounded():
    st = _sample()
    reruns = _learn(st, [item(i) for i in range(3000)], "model-a")
    assert not reruns.holds(st) and st.rerun_hits == 0 and st.rerun_ew == 0.0
    assert len(st.rerun_ids) == RERUN_SAMPLE and 0 not in st.rerun_ids
    # the sample is the smallest fingerprints seen: order-independent, whatever came first
    assert sorted(st.rerun_ids) == sorted(item_fingerprint(item(i)) for i in range(3000))[:RERUN_SAMPLE]


def test_the_same_set_on_another_model_or_hours_later_is_a_rerun_at_once_on_the_same_model_it_is_not():
    prompts = [item(i) for i in range(300)]
    on_b = _sample()
    _learn(on_b, prompts, "model-a")
    assert ItemReruns().holds(_learn(on_b, prompts, "model-b", 400_000) and on_b)
    # a harvest sampling the same items again on the same model, minutes later (for diversity)
    resampled = _sample()
    _learn(resampled, prompts, "model-a")
    reruns = _learn(resampled, prompts, "model-a", 400_000)
    assert resampled.rerun_hits == 0 and not reruns.holds(resampled)
    # the nightly run of the same model
    nightly = _sample()
    _learn(nightly, prompts, "model-a")
    reruns = _learn(nightly, prompts, "model-a", 7 * 3_600_000)
    assert nightly.rerun_hits == RERUN_SAMPLE and reruns.holds(nightly)


def test_rerunning_a_few_items_or_turning_to_new_ones_is_no_evidence():
    prompts = [item(i) for i in range(600)]
    st = _sample()
    _learn(st, prompts, "model-a")
    reruns = _learn(st, prompts[:30], "model-b", 1_000_000)  # a twentieth of the set
    assert st.rerun_hits <= 1 and not reruns.holds(st)
    # a real re-run, then new items: the evidence lapses within a few probes
    evaluated = _sample()
    _learn(evaluated, prompts, "model-a")
    _learn(evaluated, prompts, "model-b", 1_000_000)
    assert ItemReruns().holds(evaluated)
    reruns = _learn(evaluated, [item(i) for i in range(600, 1500)], "model-b", 3_000_000)
    assert not reruns.holds(evaluated) and evaluated.rerun_ew < 0.3


def test_the_fingerprint_is_keyed_so_the_sampled_items_cannot_be_read_off_the_code():
    prompts = [item(i) for i in range(500)]
    public, keyed = _sample(), _sample()
    _learn(public, prompts, "model-a")
    _learn(keyed, prompts, "model-a", key=b"deployment secret")
    sampled = {p for p in prompts if item_fingerprint(p) in public.rerun_ids}
    sampled_keyed = {p for p in prompts if item_fingerprint(p, b"deployment secret") in keyed.rerun_ids}
    assert len(sampled) == len(sampled_keyed) == RERUN_SAMPLE and len(sampled & sampled_keyed) <= 1
    # re-sending the public sample's items on another model earns nothing under the secret key
    reruns = _learn(keyed, sorted(sampled), "model-b", 2_000_000, key=b"deployment secret")
    assert keyed.rerun_hits <= 1 and not reruns.holds(keyed)


# -- the key's incident ------------------------------------------------------------------------
def test_a_chain_of_thought_evaluation_on_a_verified_account_is_named_at_info_and_never_paged():
    alerts, sent, st = run(evaluation(300))
    assert sent == alerts and len(alerts) == 1, "named (sent) at info: until its re-run it is a harvest's traffic"
    assert worst(alerts) == SEVERITY["info"]
    first = alerts[0]
    assert first["reasons"][0]["signal"] == "evaluation_pending" and first["events_seen"] <= 60
    assert first["reasons"][0]["value"] == first["events_seen"] and first["reasons"][0]["baseline"] == 1000
    reasons = {r["signal"]: r for r in first["reasons"]}
    assert reasons["account_tier"]["value"] == "enterprise" and reasons["account_age_days"]["value"] >= 180
    assert ItemReruns().holds(st) and st.rerun_hits >= 2 * RERUN_SAMPLE - 2, "re-run on models b and c"


@pytest.mark.parametrize("account", [{"tier": "tier2"}, {"age_days": 40.0}, {"org": None}, {"temperature": 0.7}])
def test_without_a_verified_account_or_a_harness_temperature_the_first_run_pages(account):
    _, sent, _ = run(evaluation(300, **account))
    assert worst(sent) == SEVERITY["critical"]


def test_past_the_wait_the_rerun_evidence_keeps_it_at_info_with_its_reasons():
    events = evaluation(300, models=("model-a", "model-b", "model-c", "model-d"))  # 1200 events
    pipeline = KeyPipeline()
    alerts, sent, st = run(events, pipeline)
    assert alerts and worst(alerts) == SEVERITY["info"] and st.n == 1200
    reasons = pipeline._products.exculpation(st, events[-1], st.template_ew)
    assert reasons[0]["value"] == "evaluation_reruns"
    values = {r["signal"]: r["value"] for r in reasons}
    assert values["item_rerun_share"] >= 0.5 and values["items_rerun"] >= 4 and values["account_age_days"] >= 180
    assert values["account_tier"] == "enterprise"


def test_the_wait_is_bounded_a_verified_sweep_that_never_reruns_pages_at_its_1000th_event():
    sweep = [event(i, T0 + timedelta(seconds=2 * i), item(i)) for i in range(1100)]
    # it re-sends a few of its items on another model, as if an evaluation
    sweep += [event(1100 + i, T0 + timedelta(hours=2, seconds=2 * i), item(i), "model-b") for i in range(30)]
    alerts, sent, _ = run(sweep)
    assert sent == alerts and sent[0]["severity"] == "info" and sent[0]["events_seen"] <= 60, "named from the start"
    paged = [a for a in alerts if a["severity"] == "critical"]
    assert paged and paged[0]["events_seen"] == 1000
    assert all(r["signal"] not in ("exculpatory", "evaluation_pending") for r in paged[0]["reasons"])


def test_a_verified_key_with_a_past_that_turns_to_a_sweep_is_not_held():
    past = [event(i, T0 - timedelta(days=3, minutes=-7 * i), f"can you help me word an email to {SUBJECTS[i % 8]} "
                  f"about the meeting on day {i}") for i in range(60)]
    alerts, sent, _ = run(past + evaluation(300, models=("model-a",), first=60))
    assert worst(sent) == SEVERITY["critical"]
    assert any(r["signal"] == "key_history" and r["value"] == "turned" for r in sent[0]["reasons"])


def test_an_evaluation_that_turns_to_new_items_loses_the_evidence_and_pages():
    evaluated = evaluation(300, models=("model-a", "model-b", "model-c", "model-d"))
    after = T0 + timedelta(days=5)
    turned = [event(1200 + i, after + timedelta(seconds=2 * i), item(1200 + i), "model-d") for i in range(800)]
    alerts, sent, st = run(evaluated + turned)
    paged = [a for a in sent if a["severity"] != "info"]
    assert paged and worst(paged) == SEVERITY["critical"] and paged[0]["events_seen"] > 1200
    assert not ItemReruns().holds(st)


def test_the_link_record_counts_a_held_evaluation_as_a_products_and_a_pending_one_as_pending():
    pipeline, state, flags = KeyPipeline(), None, []
    for offset, ev in enumerate(evaluation(200)):
        result = pipeline.step(state, ev, offset)
        state = result.state
        flags.append(result.product)
        rec = link_record(ev, result)
        if rec is not None:
            assert rec.product == result.product
    assert set(flags[:200]) == {3}, "an evaluation's evidence pending through the first run"
    assert flags[-1] == 1, "held once the set was re-run"
    young = evaluation(100, models=("model-a",), age_days=20.0)
    state = None
    for offset, ev in enumerate(young):
        result = KeyPipeline().step(state, ev, offset)
        state = result.state
        assert not result.product


def test_pending_evaluations_of_many_verified_accounts_in_one_cluster_page_one_beside_apps_does_not():
    """A hydra on bought verified accounts, its heads at temperature 0 and linked by one payment
    method, each pending as an evaluation: the cluster pages, as one evaluation company's key
    never spans accounts. One evaluation key linked to a homework app's keys (their frames in
    lockstep, stress-product-negatives-e +2000) is excused with them."""
    from tests.unit.models.test_products import cluster_alerts, three_turn_app

    heads = [event(i, T0 + timedelta(minutes=2 * h, seconds=3 * i), item(h * 1000 + i), key=f"head{h}",
                   org=f"org-{h}", pf="pf-shared") for h in range(8) for i in range(60)]
    alerts = cluster_alerts(heads)
    assert alerts and worst(alerts) >= SEVERITY["warning"]
    assert not any(r["signal"] == "exculpatory" for r in alerts[0]["reasons"])
    apps = [ev for k in range(6) for ev in three_turn_app(25, key=f"app{k}", seed=k, pf="pf-shared",
                                                          start=T0 + timedelta(minutes=3 * k))]
    one = [event(i, T0 + timedelta(minutes=1, seconds=3 * i), item(i), pf="pf-shared") for i in range(120)]
    alerts = cluster_alerts(apps + one)
    assert alerts and worst(alerts) == SEVERITY["info"]
    assert any("eval" in a["api_key_ids"] for a in alerts), "the evaluation key is in the excused cluster"


def test_operators_name_their_verified_tiers_in_the_overrides_and_the_samples_key_in_a_secret(monkeypatch, tmp_path):
    from distillguard.errors import OverridesError
    from distillguard.streams.settings import WorkerSettings

    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("verified_tiers: [scale, enterprise]\n")
    monkeypatch.setenv("DG_DETECTOR_SAMPLE_KEY", "s3cret")
    config = WorkerSettings().detector_config(overrides)
    assert config.verified_tiers == frozenset({"scale", "enterprise"}) and config.sample_key == "s3cret"
    assert "s3cret" not in repr(config)
    _, sent, _ = run(evaluation(300, tier="scale"), KeyPipeline(config))
    assert worst(sent) == SEVERITY["info"]
    _, sent, _ = run(evaluation(300, tier="tier4"), KeyPipeline(config))
    assert worst(sent) == SEVERITY["critical"]
    with pytest.raises(ValueError, match="unknown detector setting 'sample_key'"):
        DetectorConfig.from_mapping({"sample_key": "in a plain file"})
    monkeypatch.setenv("DG_DETECTOR_SAMPLE_KEY", "x" * 65)
    with pytest.raises(OverridesError, match="DG_DETECTOR_SAMPLE_KEY"):
        WorkerSettings().detector_config(overrides)
