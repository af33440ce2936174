"""Content cohorts: young keys linked by nothing but the item set they split between them."""
from __future__ import annotations

import dataclasses
import json
import random
import zlib
from datetime import datetime, timezone

import pytest

from distillguard.models.clusters import ClusterDetector, LinkRecord, link_record
from distillguard.models.cohort import (MIXED_ITEMS, OPENINGS, CohortDetector, _Candidate, _Family, _opening_buckets,
                                       content_family, family_name, item_fingerprint, member_family, prompt_opening)
from distillguard.errors import ConfigError
from distillguard.models.events import parse_event
from distillguard.models.pipeline import KeyPipeline

from .conftest import worker_link_records

DAY_MS = 86_400_000
T0 = 1_769_904_000_000  # 2026-02-01T00:00:00Z
WORDS = ("river mountain engine protein harbour ledger violin glacier copper lantern orchard saddle "
         "falcon quarry meadow tunnel marble canyon thistle beacon").split()


def item(n: int) -> str:
    """A multiple-choice exam item, the n-th of its set, plainly worded (no extraction style)."""
    r = random.Random(n)
    stem = " ".join(r.choice(WORDS) for _ in range(8))
    options = "\n".join(f"({letter}) {r.choice(WORDS)} {r.randint(1, 999)}" for letter in "ABCD")
    return f"Item {n}: which {stem} fits best?\n{options}"


def chat(n: int) -> str:
    """What ordinary users send: a mix of shapes (a question, a request, a pasted snippet, a
    long story to edit), never one shape for most of a key's requests."""
    r = random.Random(-n)
    w = lambda k: " ".join(r.choice(WORDS) for _ in range(k))  # noqa: E731
    return (f"hey, what is a good name for my {w(2)} shop?",
            f"write a short poem about a {w(3)}",
            f"why does this fail {{ x = [{w(1)}]; }} ({w(1)}); {{ y(); }}",
            f"Here is my story, please fix the grammar: {w(40)}")[n % 4]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event(key: str, n: int, ts_ms: int, prompt: str, *, account_age_days: float, output_tokens: int = 700,
          payment: bool = True, account_id: str | None = None, account_created_ms: int | None = None) -> bytes:
    """A request of its own account (or ``account_id``), payment method (or none: a free account),
    /24 and client: no shared infrastructure. The account opened ``account_age_days`` before the
    request, or at ``account_created_ms``."""
    created = ts_ms - int(account_age_days * DAY_MS) if account_created_ms is None else account_created_ms
    h = abs(hash(key)) % 200
    account = {"created_at": iso(created), "payment_fingerprint": f"pf-{key}"} if payment else \
        {"created_at": iso(created)}
    return json.dumps({
        "schema": "llm.request.v1", "event_id": f"{key}-{n}", "ts": iso(ts_ms), "api_key_id": key,
        "account_id": account_id or f"acct-{key}", "model": "m", "prompt": prompt, "turn_index": 0,
        "usage": {"input_tokens": 80, "output_tokens": output_tokens},
        "client": {"ip": f"10.{h}.{n % 7}.{h % 50 + 1}", "user_agent": f"client-{key}", "asn": 1000 + h},
        "account": account,
    }).encode()


def person_times(key: str, n: int, mean_ms: int) -> list[int]:
    """``n`` request times from 0 at a person's pace: ``mean_ms`` apart on average, bursty
    (``_gaps``' exponential gaps, seeded by ``key``)."""
    return _gaps(random.Random(key), n, mean_ms, steady=False)


def sweep(n_keys: int, per_key: int, *, account_age_days: float = 2.0, items=item, shared_items: bool = False,
          output_tokens: int = 700, enrol_hours: float = 1.5, gap_ms: int = 240_000,
          steady: bool = True, account_id: str | None = None, ageing: bool = False) -> list[bytes]:
    """``n_keys`` keys enrolled ``enrol_hours`` apart, each sending ``per_key`` requests
    ``gap_ms`` apart (on average and bursty, as a person sends, unless ``steady``): a disjoint
    slice of one item set each (or all the same items); each key on its own account, or all on
    ``account_id``. Every request ``account_age_days`` after its account opened (an account that
    never ages), or, ``ageing``, the key's first: its account ages during the sweep."""
    raws = []
    for k in range(n_keys):
        start = T0 + int(k * enrol_hours * 3_600_000)
        key = f"key{k:03d}"
        times = _gaps(random.Random(key), per_key, gap_ms, steady)
        created = start + times[0] - int(account_age_days * DAY_MS) if ageing else None
        for i, at in enumerate(times):
            n = i if shared_items else k * per_key + i
            raws.append((start + at, event(key, i, start + at, items(n), account_age_days=account_age_days,
                                           output_tokens=output_tokens, account_id=account_id,
                                           account_created_ms=created)))
    return [raw for _, raw in sorted(raws)]


def link_records(raws: list[bytes]) -> list:
    """Each event's link record (None: not forwarded), through the per-key pipeline as replay does."""
    pipeline, states, records = KeyPipeline(), {}, []
    for raw in raws:
        ev = parse_event(raw)
        result = pipeline.step(states.get(ev.api_key_id), ev)
        states[ev.api_key_id] = result.state
        records.append(link_record(ev, result))
    return records


def replay(raws: list[bytes], clusters: ClusterDetector | None = None) -> list[dict]:
    """Events through the per-key pipeline, ``link_record`` and the cluster detector, as replay does."""
    clusters = clusters or ClusterDetector()
    return [alert for rec in link_records(raws) if rec is not None for alert in clusters.observe_link(rec)]


def cohort_alerts(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if any(r["signal"] == "content_cohort" for r in a["reasons"])]


def test_young_keys_splitting_one_item_set_raise_one_cohort_incident_naming_every_member():
    # 30 keys, 2 days of enrolment, 20 plain requests each: no key is an extraction key
    # alone, nothing links them, together they swept 600 items without repeating one.
    alerts = replay(sweep(30, 20))
    found = cohort_alerts(alerts)
    assert found, "no cohort incident"
    assert {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    assert found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    assert found[0]["severity"] == "warning"  # under critical_members: a human looks first
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["content_cohort"] == "latin-options"
    assert reasons["cohort_members"] == 30 and reasons["cohort_item_overlap"] == 0.0
    assert reasons["members_enrolled_within_hours"] == pytest.approx(29 * 1.5, abs=0.1)
    # What the members sent, not what each had sent when it joined (its 4th request): the last
    # member, named at its 4th, sends its other 16 after the last alert. (Before: 4 and 152.)
    assert reasons["median_member_requests"] == 20
    assert 29 * 20 < reasons["cohort_items_covered"] == found[-1]["events_seen"] < 30 * 20
    assert reasons["cohort_coverage_per_member"] == round(reasons["cohort_items_covered"] / 20, 1)


def test_an_incident_is_sent_again_when_its_members_requests_double():
    # 30 heads enrolled 3 minutes apart, all named by their 8th request, each sending 60 in 10
    # hours: the incident is sent again as their requests double (at most every 10 minutes), so
    # its last alert is within a factor 2 of what they sent. (Before: its last alert, when the
    # last member joined, said 8 requests a member and 237 items of 1,800.)
    found = cohort_alerts(replay(sweep(30, 60, enrol_hours=0.05, gap_ms=600_000)))
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["cohort_members"] == 30
    assert 2 * reasons["median_member_requests"] >= 60 and 2 * reasons["cohort_items_covered"] >= 30 * 60
    assert len(found) <= 8  # a few updates, not one per request


def _small_heads(n_keys: int, per_key: int, *, steady: bool, items=item, from_hour: int = 20,
                 account_age_days: float = 2.0) -> list[bytes]:
    """``n_keys`` keys enrolled an hour apart from ``from_hour``, ``per_key`` requests each
    4 minutes apart (on a timer's beat if ``steady``): slices of the same set as ``sweep``'s
    keys, further on in it."""
    raws = []
    for k in range(n_keys):
        start = T0 + (from_hour + k) * 3_600_000
        for i, at in enumerate(_gaps(random.Random(f"few{k}"), per_key, 240_000, steady)):
            raws.append((start + at, event(f"few{k:02d}", i, start + at, items(100_000 + k * per_key + i),
                                           account_age_days=account_age_days)))
    return [raw for _, raw in sorted(raws)]


@pytest.mark.parametrize("per_key", [5, 7])
def test_small_heads_on_a_beat_join_the_open_incident_of_their_set(per_key):
    # A hydra that read min_key_events (8) sends fewer requests a head. Its heads of 5-7
    # requests open no wave, but once its larger heads' incident is open, those that kept to
    # its family on a timer's beat join it on probation and are named when their content fits.
    raws = sorted(sweep(30, 20) + _small_heads(20, per_key, steady=True), key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    named = set(found[-1]["api_key_ids"])
    assert {f"key{k:03d}" for k in range(30)} <= named
    assert sum(key.startswith("few") for key in named) >= 15
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    # (the larger heads that began once it was open joined on their first requests too)
    assert reasons["cohort_members_joined_on_few_requests"] >= sum(key.startswith("few") for key in named)


@pytest.mark.parametrize("case", ["a person's pace", "too few requests", "no incident open"])
def test_what_small_heads_do_not_join(case):
    # At a person's pace a few requests' content fits a wave by chance too often; under
    # min_late_events (4) nothing is told; and small heads alone open no wave.
    heads = {"a person's pace": lambda: _small_heads(20, 7, steady=False),
             "too few requests": lambda: _small_heads(20, 3, steady=True),
             "no incident open": lambda: _small_heads(40, 7, steady=True)}[case]()
    raws = sorted((sweep(30, 20) if case != "no incident open" else []) + heads, key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    assert not any(key.startswith("few") for a in found for key in a["api_key_ids"])
    if case != "no incident open":
        assert {f"key{k:03d}" for k in range(30)} <= set(found[-1]["api_key_ids"])


@pytest.mark.parametrize("per_key", [5, 7])
def test_small_heads_done_before_the_incident_opened_are_named_when_it_opens(per_key):
    # A hydra on a slow beat: its small heads send their last request hours before its larger
    # heads reach min_key_events and open the incident (stress-attack-shift: heads of 5-7
    # requests 111 minutes apart). They wait for it, and are judged when it opens.
    raws = sorted(sweep(30, 20) + _small_heads(10, per_key, steady=True, from_hour=0),
                  key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    assert sum(key.startswith("few") for key in found[0]["api_key_ids"]) >= 8
    # every one of them was done before the incident's first alert
    opened = found[0]["ts"]
    assert max(json.loads(raw)["ts"] for raw in raws if json.loads(raw)["api_key_id"].startswith("few")) < opened


@pytest.mark.parametrize("steady", [True, False], ids=["on a clock", "at a person's pace"])
def test_small_heads_on_aged_accounts_join_on_a_clock_only(steady):
    # A hydra that buys aged accounts for its small heads: on a clock's beat they are judged as
    # young keys' small heads (a person's pace is the mature keys' judgement, at 8 requests).
    raws = sorted(sweep(30, 20) + _small_heads(20, 6, steady=steady, account_age_days=400),
                  key=lambda raw: json.loads(raw)["ts"])
    named = {key for a in cohort_alerts(replay(raws)) for key in a["api_key_ids"]}
    assert {f"key{k:03d}" for k in range(30)} <= named
    assert (sum(key.startswith("few") for key in named) >= 15) if steady else not any(
        key.startswith("few") for key in named)


@pytest.mark.parametrize("age_days", [2.0, 13.97, 13.99], ids=["young throughout", "turns 14 days at its 12th",
                                                                "turns 14 days at its 4th"])
def test_a_member_whose_account_turns_mature_mid_sweep_is_one_member(age_days):
    # 30 heads of 40 requests 4 minutes apart (a steady clock), on accounts that turn 14 days
    # old during the sweep: the same 30 members, each named once and counted for all it sent.
    # (Before: a second, mature candidate of the key, judged as a young key again for its
    # clock, was named again: 53 "members", 23 of them twice, past critical_members' bar.)
    alerts = cohort_alerts(replay(sweep(30, 40, account_age_days=age_days, ageing=True)))
    assert alerts
    assert all(len(a["api_key_ids"]) == len(set(a["api_key_ids"])) for a in alerts)
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}
    assert alerts[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    assert reasons["cohort_members"] == 30 and alerts[-1]["severity"] == "warning"
    # past a mature account's 16th request only its sampled records come: each stands for the
    # requests since the key's last one
    assert reasons["median_member_requests"] == 40


def test_a_member_is_named_once_in_its_incident():
    # A member named, evicted from the candidates (too many keys since), judged again and
    # found once more: one member, counted once.
    det, fam = CohortDetector(), _Family()
    cand = det._keys["k"] = _Candidate(T0, events=8)
    det._name(fam, "k", cand)
    again = _Candidate(T0, events=8)
    det._name(fam, "k", again)
    assert fam.named == ["k"] and fam.member_requests == {"k": 8} and fam.totals[0] == 8 and again.named


def test_an_aged_key_whose_clock_did_not_hold_goes_back_to_the_mature_judgement():
    # Judged as a young key for its first few gaps on a clock, a mature key whose first 8
    # requests keep no rotation's beat is a mature key again: a person's gaps keep a clock by
    # chance now and then, and must not buy the young keys' lower bars for good.
    det = CohortDetector()
    times = [0, 600_000, 1_200_000, 1_800_000, 2_400_000, 2_500_000, 9_000_000, 9_030_000, 20_000_000]
    for i, at in enumerate(times):
        det.learn_one(LinkRecord("aged", "a", T0 + at, 0.0, 0, 0, output_tokens=700, key_events=i + 1,
                                 account_created_ms=T0 - 400 * DAY_MS, family=content_family(item(i)),
                                 simhash=i, item=item_fingerprint(item(i))))
        if i == 4:
            assert "aged" in det._keys and det._keys["aged"].on_beat  # 4 gaps 10 minutes apart
    assert "aged" not in det._keys and "aged" in det._mature and not det._mature["aged"].on_beat


@pytest.mark.parametrize("requests", [4, 5])
def test_an_aged_key_is_told_by_a_clock_over_four_gaps(requests):
    # A person's first 3 gaps keep a clock now and then, a day's rhythm most of all
    # (unwrapped-plain-corpora: a casual old key's 15, 12 and 14 hours, named in a free-form
    # wave); on an aged account, where there are many more keys, a clock is told over 4 gaps.
    det = CohortDetector()
    for i in range(requests):
        det.learn_one(LinkRecord("aged", "a", T0 + i * 600_000, 0.0, 0, 0, output_tokens=700, key_events=i + 1,
                                 account_created_ms=T0 - 400 * DAY_MS, family=content_family(item(i)),
                                 simhash=i, item=item_fingerprint(item(i))))
    assert ("aged" in det._keys) == (requests == 5) and ("aged" in det._mature) == (requests == 4)


def test_the_cohort_is_found_by_nothing_else():
    # Guard on the test above: the keys are plain and unlinked, so the cluster detector's own
    # linking never names them (what the cohort detector is for).
    alerts = replay(sweep(30, 20), ClusterDetector(cohort=CohortDetector(min_members=10_000, min_item_members=10_000)))
    assert not alerts


def test_a_large_cohort_is_critical():
    found = cohort_alerts(replay(sweep(60, 12, enrol_hours=0.5)))
    assert found[-1]["severity"] == "critical" and len(found[-1]["api_key_ids"]) == 60


@pytest.mark.parametrize("age_days", [2.0, 400.0], ids=["young accounts", "aged accounts"])
@pytest.mark.parametrize("case", ["short answers", "one item set re-sent by every key", "ordinary chat",
                                  "too few members", "too few requests each"])
def test_what_is_not_a_content_cohort(case, age_days):
    kw = {"account_age_days": age_days, "steady": age_days < 30}  # (aged keys on a beat: see below)
    raws = {
        "short answers": lambda: sweep(30, 20, output_tokens=3, **kw),  # an evaluation wants the letter
        "one item set re-sent by every key": lambda: sweep(30, 20, shared_items=True, **kw),
        # short prose, the family of most chat, at a person's pace (on a timer's beat short
        # prose is a sweep of short instructions: test_short_free_form_items_on_a_timers_beat_...)
        "ordinary chat": lambda: sweep(30, 20, items=chat, **{**kw, "steady": False}),
        "too few members": lambda: sweep(7, 20, **kw),  # (an item family: min_item_members 8)
        "too few requests each": lambda: sweep(30, 7, **kw),
    }[case]()
    assert not cohort_alerts(replay(raws))


@pytest.mark.parametrize("gap_ms", [240_000, 20_000], ids=["a person's pace", "a batch job's rate"])
def test_aged_accounts_splitting_one_item_set_are_a_cohort_of_their_own(gap_ms):
    # A campaign that buys aged accounts for every head has no young wave to join: 30 accounts
    # a year old, each sweeping its own slice of one exam bank with long answers, at its own
    # pace. Before, none was named (content-cohort-aged: key recall 0.065-0.117).
    found = cohort_alerts(replay(sweep(30, 20, account_age_days=400, steady=False, gap_ms=gap_ms)))
    assert found and {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    assert found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    assert found[-1]["severity"] == "warning"
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["cohort_mature_members"] == 30 and reasons["cohort_aged_members_on_a_beat"] == 0
    assert reasons["linked_by"].startswith("content only: aged accounts")
    assert reasons["cohort_content_affinity"] > 1.25
    # a mature member's requests past its first 16 reach the detector as a sample: counted by
    # the key's own count of its requests
    assert reasons["median_member_requests"] == 20 and reasons["cohort_items_covered"] > 29 * 20


def test_one_customers_keys_on_its_aged_account_are_no_cohort():
    # An app or a team running 30 keys under one old account is one customer: a wave of mature
    # members counts accounts, not keys.
    assert not cohort_alerts(replay(sweep(30, 20, account_age_days=400, steady=False, account_id="acct-app")))


def test_aged_accounts_sweeping_on_a_rotations_beat_are_a_cohort():
    # A hydra that buys aged accounts hands each head its requests in turn: each head sends on
    # the rotation's beat (here every 4 minutes, to the second). Judged as young keys, the 30
    # heads are one wave of members on a beat (at their own paces: a wave of mature members,
    # above).
    found = cohort_alerts(replay(sweep(30, 20, account_age_days=400)))
    assert found and found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["cohort_machine_paced_members"] == reasons["cohort_aged_members_on_a_beat"] == 30
    assert reasons["linked_by"].startswith("content and pace")


def test_a_mature_key_s_pace_is_read_from_its_gaps_not_its_requests():
    # A mature key judged on its first 8 requests counts its later ones (judged again on 16)
    # but measures no gaps between them: its pace is that of the gaps it measured. Before, its
    # 7 gaps were divided as 15: 20 s gaps read as under half at machine rate, and a steady
    # beat as a variation of 1.07.
    det = CohortDetector()
    for i in range(16):
        det.learn_one(LinkRecord("batch", "a", T0 + i * 20_000, 0.0, 0, 0, output_tokens=600,
                                 account_created_ms=T0 - 400 * DAY_MS, family=content_family(item(i)),
                                 item=i, key_events=i + 1))
    cand = det._mature["batch"]
    assert cand.events == 16 and cand.gaps == 7 and cand.at_machine_rate() and cand.gap_variation() < 0.01


def test_ordinary_chat_keeps_to_no_family_and_items_to_one():
    # Why "ordinary chat" above is not a cohort while the same keys sending items are: a
    # member keeps to one content family, a person's requests change shape.
    assert len({content_family(chat(n)) for n in range(8)}) >= 3
    assert {family_name(content_family(item(n))) for n in range(8)} == {"latin-options-long"}


def labelled_item(n: int) -> str:
    """An exam item without options whose wrapper asks for a labelled answer in one of two ways:
    a trailing "Answer:" label, or an instruction on the answer's format."""
    r = random.Random(n)
    stem = " ".join(r.choice(WORDS) for _ in range(10))
    if n % 2:
        return f"Question: which {stem} is the odd one out in this set of {r.randint(3, 9)}?\nAnswer:"
    return f"Which {stem} is the odd one out in this set of {r.randint(3, 9)}? Answer with the letter of the correct option only."


def test_a_wrapper_asking_for_labelled_answers_two_ways_keeps_its_members_to_one_family():
    # content-cohort-b, second draw: every member sent half its items ending on "Answer:" (an
    # answer label) and half telling the model to "answer with the letter" (free-form prose):
    # each member kept to neither kind, and the 23-key cohort was missed.
    assert {family_name(content_family(labelled_item(n))) for n in (1, 3)} == {"latin-answer-label-long"}
    assert family_name(content_family(labelled_item(0))) == "latin-prose-long"
    found = cohort_alerts(replay(sweep(30, 20, items=labelled_item)))
    assert found and {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    assert found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    assert {r["signal"]: r["value"] for r in found[-1]["reasons"]}["content_cohort"] == "latin-answer-label"


def test_the_answer_instruction_is_read_in_other_languages_and_through_look_alike_letters():
    from distillguard.models.features import BENCHMARK_FORMAT, featurize_text

    for prompt in ("Which river is longest? Answer with the letter of the correct option only.",
                   "Which river is l\u043enge\u0455t? \u0410nswer with the l\u0435tter of the correct option only.",
                   "Welcher Fluss ist am längsten? Antworte nur mit dem Buchstaben der richtigen Option.",
                   "Какая река самая длинная? Ответьте только буквой правильного варианта."):
        answer_format = bool(featurize_text(prompt).families & BENCHMARK_FORMAT)
        assert family_name(content_family(prompt, answer_format)).endswith("-answer-instructed"), prompt
    # a plain question says nothing about the answer's form
    assert not featurize_text("Which river is the longest in Europe?").families & BENCHMARK_FORMAT


# One item set of free-form instructions, questions, code and math: one vocabulary.
DOMAIN = "enzyme catalyst titration molarity isotope solvent reagent polymer oxidation buffer alkane halide".split()
# What everyone else asks about: a broad vocabulary no one key keeps to.
GENERAL = [f"{a}{b}" for a in ("sun", "rain", "car", "tea", "job", "dog", "song", "game", "trip", "cake", "shoe", "tax")
           for b in ("day", "plan", "fix", "list", "idea", "gift", "note", "shop", "team", "room", "park", "deal")]


def free_item(n: int) -> str:
    """The n-th item of a free-form set: mostly item-sized instructions and questions, with a
    short code and a short math item in every five (the shapes such sets mix)."""
    r = random.Random(n)
    d = lambda: r.choice(DOMAIN)  # noqa: E731
    return (f"Explain how the {d()} and the {d()} change the {d()} of a {d()} sample in a teaching laboratory.",
            f"Why does a {d()} react with the {d()} {d()} when the {d()} solution is heated slowly in a {d()}?",
            f"Write code for the {d()} {d()} table: def rate(x): return [x * k for k in range(10)]",
            f"Compute the {d()} {d()} yield of the {d()} step: 3*x + 4 = 19, x^2 - 2 = 23, {r.randint(1, 99)}/7 = ?",
            f"Describe the {d()}, the {d()} and the {d()} of a {d()} in three short sentences for a lab report.")[n % 5]


def long_chat(n: int) -> str:
    """A person's long request about everyday things (item-sized, free-form, long answer)."""
    r = random.Random(10_000 + n)
    g = lambda: r.choice(GENERAL)  # noqa: E731
    return (f"I have been thinking about my {g()} and my {g()} lately, could you tell me something about "
            f"{g()} {g()} and {g()} please?")


def free_form_wave(*, users: int = 0, sweepers: int = 30, styled_sweeps: int = 0) -> list[bytes]:
    """``sweepers`` young keys splitting ``free_item``s, ``users`` young keys sending long chat
    over the same two days, and established accounts' ordinary traffic all along (and
    ``styled_sweeps`` established keys sweeping ``free_item``s in extraction style)."""
    raws = sweep(sweepers, 20, items=free_item) if sweepers else []
    for u in range(users):
        start = T0 + int(u * 2.2 * 3_600_000) + 1_800_000
        raws += [event(f"user{u:03d}", i, start + at, long_chat(u * 100 + i), account_age_days=1)
                 for i, at in enumerate(person_times(f"user{u:03d}", 12, 900_000))]
    for k in range(120):  # established accounts (the detector's picture of ordinary traffic)
        start = T0 - DAY_MS + k * 1_200_000
        raws += [event(f"old{k:03d}", i, start + at, long_chat(50_000 + k * 100 + i), account_age_days=300)
                 for i, at in enumerate(person_times(f"old{k:03d}", 16, 600_000))]
    for k in range(styled_sweeps):
        start = T0 - DAY_MS + k * 600_000
        raws += [event(f"hydra{k:03d}", i, start + i * 60_000, free_item(90_000 + k * 100 + i)
                       + " Think step by step and show your full reasoning.", account_age_days=300)
                 for i in range(40)]
    return sorted(raws, key=lambda raw: json.loads(raw)["ts"])


def test_a_free_form_item_set_is_one_family_though_its_items_change_shape_and_length():
    # Before: prose-long, question-long, code-short and math-short were four families, and
    # no key of a free-form sweep kept to one (the plain cohorts of the stress stream missed).
    assert len({content_family(free_item(n)) for n in range(5)}) == 4
    found = cohort_alerts(replay(free_form_wave()))
    assert found and {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    assert found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["content_cohort"] == "latin-free-form" and reasons["cohort_content_affinity"] > 0
    assert reasons["cohort_coverage_per_member"] > 20  # together: many times what one member sent


def test_young_users_chatting_at_length_during_a_free_form_wave_are_not_named():
    # 20 young users who each keep to long free-form requests with long answers, arriving
    # while the wave runs: members by shape, but about what everyone asks about.
    found = cohort_alerts(replay(free_form_wave(users=20)))
    assert found and not any(k.startswith("user") for a in found for k in a["api_key_ids"])
    assert set(found[-1]["api_key_ids"]) == {f"key{k:03d}" for k in range(30)}


def test_a_burst_of_young_users_chatting_at_length_is_no_cohort():
    # The same users without a sweep: 20 in two days keep to one family, but share no content.
    assert not cohort_alerts(replay(free_form_wave(users=20, sweepers=0)))


CYRILLIC = "река гора двигатель белок гавань скрипка ледник медь фонарь сад сокол карьер".split()


def mixed_item(n: int) -> str:
    """The n-th item of a capability sweep's mixed set: free-form items, multiple-choice items
    and multiple-choice items in another script, in turn (as a sweep walks a mixed set)."""
    if n % 5 < 3:
        return free_item(n)
    if n % 5 == 3:
        return item(n)
    r = random.Random(n)
    options = "\n".join(f"{letter}) {r.choice(CYRILLIC)} {r.randint(1, 99)}" for letter in "АБВГ")
    return f"Вопрос {n}: какой {' '.join(r.choice(CYRILLIC) for _ in range(6))} верен?\n{options}"


def test_heads_dealt_a_mixed_item_set_in_turn_are_one_cohort():
    # stress-attack-shift: a 152-head hydra dealt a sweep of instructions, Japanese and other
    # multiple-choice items in turn; each head got 40-60 % free-form and the rest options in
    # two scripts, kept to no family, and 92 heads went unnamed.
    raws = sweep(30, 20, items=mixed_item)
    det = ClusterDetector()
    found = cohort_alerts(replay(raws, det))
    assert found and {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    assert found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["content_cohort"] == "mixed-items" and reasons["cohort_machine_paced_members"] == 30
    assert reasons["cohort_camouflaged_members"] == 0  # dealt a mix by the set's design, not hiding
    # ... and without the mixed family, none of them is a member of any
    assert not cohort_alerts(replay(raws, ClusterDetector(cohort=CohortDetector(min_mixed_share=1.01))))


@pytest.mark.parametrize("from_hour", [0, 40], ids=["done before it opened", "begun once it was open"])
def test_small_heads_dealt_one_part_of_a_mixed_set_join_its_incident(from_hour):
    # The same hydra's heads of 5 requests get the set's free-form part only (it deals its
    # instructions before its items): they keep to the free-form family, whose own incident
    # never opens, and join the mixed set's incident on probation, as a part of its set.
    raws = sorted(sweep(30, 20, items=mixed_item) + _small_heads(10, 5, steady=True, items=free_item,
                                                                 from_hour=from_hour),
                  key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    assert found and {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    named = set(found[-1]["api_key_ids"])
    assert {f"key{k:03d}" for k in range(30)} <= named and sum(key.startswith("few") for key in named) >= 8
    # ... which without the mixed incident's parts they do not
    found = cohort_alerts(replay(raws, ClusterDetector(cohort=CohortDetector(min_mixed_share=1.01))))
    assert not any(key.startswith("few") for a in found for key in a["api_key_ids"])


def test_a_mixed_member_that_keeps_to_one_family_later_moves_to_it():
    # agent-harvest: a head of a free-form cohort whose tool outputs ended on a label twice in
    # its first 8 requests was a mixed member; it kept to free-form by its 20th, and was left
    # out of its cohort's incident while it stayed mixed.
    det = CohortDetector()
    prompts = [free_item(0), item(1), free_item(2), item(3)] + [free_item(n) for n in range(4, 20)]
    for i, prompt in enumerate(prompts):
        det.learn_one(LinkRecord("k", "a", T0 + i * 20_000, 0.0, 0, 0, output_tokens=600, account_created_ms=T0,
                                 family=content_family(prompt), item=i, key_events=i + 1, simhash=i))
        if i == 7:
            assert det._keys["k"].family == MIXED_ITEMS and "k" in det._families[MIXED_ITEMS].recent
    assert det._keys["k"].family == member_family(content_family(free_item(0)))
    assert "k" not in det._families[MIXED_ITEMS].recent and "k" in det._families[det._keys["k"].family].recent


def test_young_users_who_paste_a_quiz_item_now_and_then_are_no_mixed_cohort():
    # Students chatting at length who paste a quiz question of their own into every fourth
    # request, at a person's pace: no members of the mixed family. (Members, 20 of them in two
    # days fitted one another by the quiz's frame and made a wave: the machine pace is what
    # keeps them out, checked below on the same requests sent on a timer.)
    def student(u: int, i: int) -> str:
        if i % 4:
            return long_chat(u * 100 + i)
        r = random.Random(u * 1000 + i)
        options = "\n".join(f"({letter}) {r.choice(GENERAL)}" for letter in "ABCD")
        return f"Quiz: which {' '.join(r.choice(GENERAL) for _ in range(6))} is right?\n{options}"

    def students(steady: bool) -> tuple[list[dict], ClusterDetector]:
        raws = free_form_wave(sweepers=0)
        for u in range(20):
            start = T0 + int(u * 2.2 * 3_600_000) + 1_800_000
            times = _gaps(random.Random(u), 12, 900_000, steady)
            raws += [event(f"user{u:03d}", i, start + at, student(u, i), account_age_days=1)
                     for i, at in enumerate(times)]
        det = ClusterDetector()
        return cohort_alerts(replay(sorted(raws, key=lambda raw: json.loads(raw)["ts"]), det)), det

    found, det = students(steady=False)
    assert not found and {det.cohort._keys[f"user{u:03d}"].family for u in range(20)} == {-1}
    found, det = students(steady=True)
    assert found and {det.cohort._keys[f"user{u:03d}"].family for u in range(20)} == {MIXED_ITEMS}


def test_established_sweeps_are_not_what_ordinary_traffic_is_about():
    # Established keys sweeping in extraction style send far more than ordinary users do: were
    # their prompts the picture of ordinary traffic, young users' everyday chat would stand out
    # from it together, as one wave (dev-s1: 18 benign keys named beside its hydras).
    assert not cohort_alerts(replay(free_form_wave(users=20, sweepers=0, styled_sweeps=60)))


def mature_sweepers(n: int, *, first_answers: int = 700, later_answers: int = 700, short_at: tuple = (),
                    payment: bool = True) -> list[bytes]:
    """``n`` keys of accounts a year old, each sweeping its own slice of the wave's item set
    (20 ``free_item``s, at a person's pace) while the wave runs: the first two answers
    ``first_answers`` tokens long, the rest ``later_answers`` (but those of the requests
    ``short_at``: 60)."""
    raws = []
    for k in range(n):
        start = T0 + int((k * 7 + 3) * 3_600_000)
        raws += [event(f"mature{k:02d}", i, start + at, free_item(70_000 + k * 100 + i), account_age_days=400,
                       output_tokens=60 if i in short_at else first_answers if i < 2 else later_answers,
                       payment=payment) for i, at in enumerate(person_times(f"mature{k:02d}", 20, 240_000))]
    return raws


def test_a_mature_account_sweeping_with_a_young_wave_is_named_on_content_evidence():
    # Account maturity is no free pass: a year-old account that sweeps a slice of the wave's
    # item set (its forwarded records: no item another key's, every answer long, prompts about
    # what the wave is about) is named in the wave's incident; before, only young keys were.
    raws = sorted(free_form_wave() + mature_sweepers(3), key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    assert found and {a["alert_id"] for a in found} == {found[0]["alert_id"]}
    named = set(found[-1]["api_key_ids"])
    assert {f"mature{k:02d}" for k in range(3)} <= named and {f"key{k:03d}" for k in range(30)} <= named
    reasons = {r["signal"]: r["value"] for r in found[-1]["reasons"]}
    assert reasons["cohort_mature_members"] == 3


def test_members_linked_into_a_cluster_that_never_pages_are_named_in_the_cohort_incident():
    # Five members pay with one card: the cluster detector links them (5 keys, its min_keys),
    # but enrolled hours apart and sending plain items they are no payment ring and no
    # extraction cluster: that cluster raises no incident. Before, a key in any cluster of 5+
    # keys was left to that cluster's incident, which never came: the five were in no alert
    # (content-cohort lost five members of one cohort so).
    def shared_card(raw: bytes) -> bytes:
        doc = json.loads(raw)
        if doc["api_key_id"] in {f"key{k:03d}" for k in range(5)}:
            doc["account"]["payment_fingerprint"] = "pf-shared"
        return json.dumps(doc).encode()

    clusters = ClusterDetector()
    found = cohort_alerts(replay([shared_card(raw) for raw in free_form_wave()], clusters))
    assert clusters._in_cluster("key000") and clusters._find("key000") not in clusters._alerted
    assert found and found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(30)]


def test_a_mature_free_account_is_judged_on_its_first_requests():
    # Before, a mature key was judged on the records sampled of a paying key only (its 1st,
    # 2nd, 4th, 8th ... request): an aged account with no payment method on file was never
    # judged at all. Every key's first requests are forwarded now, for the cohort detector only.
    raws = sorted(free_form_wave() + mature_sweepers(3, payment=False), key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    named = set(found[-1]["api_key_ids"])
    assert {f"mature{k:02d}" for k in range(3)} <= named
    assert {r["signal"]: r["value"] for r in found[-1]["reasons"]}["cohort_mature_members"] == 3


def test_a_mature_member_with_an_answer_or_two_under_harvest_length_is_named():
    # A harvest's answers spread: of the 8 a mature member is judged on, one or two may fall
    # under the harvest length. Before, one short answer of the sampled records cleared it.
    raws = sorted(free_form_wave() + mature_sweepers(3, short_at=(3, 6)), key=lambda raw: json.loads(raw)["ts"])
    named = set(cohort_alerts(replay(raws))[-1]["api_key_ids"])
    assert {f"mature{k:02d}" for k in range(3)} <= named


def test_a_key_s_first_requests_reach_the_cohort_detector_only():
    # Forwarded for the cohort detector: the cluster detector links and counts nothing of them
    # (its incidents are those it found before they were forwarded).
    clusters = ClusterDetector()
    records = link_records([event("old-user", i, T0 + at, long_chat(i), account_age_days=300, payment=False)
                            for i, at in enumerate(person_times("old-user", 20, 600_000))])
    assert all(r is not None and r.cohort_only for r in records[:16]) and records[16:] == [None] * 4
    for rec in records[:16]:
        assert clusters.values_to_link(rec) == [] and clusters.observe_link(rec) == []
    assert "old-user" not in clusters._keys and "old-user" in clusters.cohort._mature


def test_first_requests_sent_again_after_a_restart_are_learned_once():
    # A worker that restarts re-applies events from its restored key states and sends their
    # link records again; the cluster detector drops repeats of its own records by their source
    # offsets, but a mature key's first requests reach only the cohort detector, which drops
    # them by the key's event count. Before, the repeats were counted twice over.
    raws = sorted(free_form_wave() + mature_sweepers(3, payment=False), key=lambda raw: json.loads(raw)["ts"])
    records = [rec for rec in link_records(raws) if rec is not None]
    again = []
    for rec in records:
        again.append(rec)
        if rec.api_key_id.startswith("mature") and rec.key_events == 6:  # restarted: its 2nd to 6th again
            again += [r for r in records if r.api_key_id == rec.api_key_id and 2 <= r.key_events <= 6]
    assert len(again) == len(records) + 15

    def cohort_of(recs):
        det = ClusterDetector()
        return cohort_alerts([a for r in recs for a in det.observe_link(r)]), det.cohort._mature

    once, mature_once = cohort_of(records)
    twice, mature_twice = cohort_of(again)
    assert twice == once and {f"mature{k:02d}" for k in range(3)} <= set(once[-1]["api_key_ids"])
    assert [c.events for c in mature_twice.values()] == [c.events for c in mature_once.values()]


def test_a_mature_evaluation_account_beside_a_wave_is_not_named():
    # An evaluation account on the same kind of items: a couple of long chats, then graded
    # short answers. More than a quarter of the answers it is judged on are short: not a
    # member (its mean answer over its first 8 requests is still long).
    raws = sorted(free_form_wave() + mature_sweepers(3, later_answers=16), key=lambda raw: json.loads(raw)["ts"])
    found = cohort_alerts(replay(raws))
    assert found and not any(k.startswith("mature") for a in found for k in a["api_key_ids"])


def test_a_short_chat_is_no_free_form_member():
    # Free-form keys must send mostly item-sized requests: chat's short turns, at a person's
    # pace (minutes apart), do not qualify.
    det = CohortDetector(min_key_events=4)
    at = T0
    for i, gap in enumerate((0, 240_000, 45_000, 900_000, 120_000, 2_400_000, 60_000, 600_000)):
        at += gap
        det.learn_one(LinkRecord("k", "a", at, 0.0, 0, 0, output_tokens=600, account_created_ms=T0,
                                 family=content_family("why is the sky blue?"), item=i, key_events=i + 1))
    assert det._keys["k"].family == -1


@pytest.mark.parametrize("account_age_days", [0, 400])
def test_short_free_form_items_on_a_timers_beat_make_a_member(account_age_days):
    # A slow round-robin hands each head a short instruction every hour and a half, day and
    # night (stress-attack-shift +1000: 59 heads on aged accounts, gap variation under 0.05):
    # no person's chat keeps that beat. Young or aged (an aged key on a beat is judged as a
    # young one), such a key is a member; the same requests at a person's bursty pace are not
    # (above).
    det = CohortDetector()
    for i in range(8):
        det.learn_one(LinkRecord("k", "a", T0 + i * 5_460_000 + (i % 3) * 40_000, 0.0, 0, 0, output_tokens=600,
                                 account_created_ms=T0 - account_age_days * DAY_MS,
                                 family=content_family("why is the sky blue?"), item=i, key_events=i + 1))
    assert det._keys["k"].family == member_family(content_family("why is the sky blue?"))


def test_short_free_form_items_at_machine_rate_make_a_member():
    # A general-instruction set ("Rewrite this sentence ...") is short: the same requests sent
    # 20 s apart are no person's chat (content-cohort-b: a 46-key cohort missed whole).
    det = CohortDetector(min_key_events=4)
    for i in range(8):
        det.learn_one(LinkRecord("k", "a", T0 + i * 20_000, 0.0, 0, 0, output_tokens=600, account_created_ms=T0,
                                 family=content_family("why is the sky blue?"), item=i, key_events=i + 1))
    assert det._keys["k"].family == member_family(content_family("why is the sky blue?"))


@pytest.mark.parametrize("account_age_days", [0, 400])
def test_a_quick_session_of_short_questions_is_no_member(account_age_days):
    # A person's quick session: 8 short questions 2-5 minutes apart (gap variation 0.33, under
    # the beat rule's 0.35: stress-judging-a named such a casual key in a wave on a beat). Short
    # free-form requests make a member only on a clock's beat (max_clock_variation 0.1).
    det = CohortDetector()
    at = T0
    for i, gap in enumerate((0, 290_000, 130_000, 187_000, 272_000, 210_000, 305_000, 110_000)):
        at += gap
        det.learn_one(LinkRecord("k", "a", at, 0.0, 0, 0, output_tokens=600,
                                 account_created_ms=T0 - account_age_days * DAY_MS,
                                 family=content_family("why is the sky blue?"), item=i, key_events=i + 1))
    cand = det._keys.get("k") or det._mature["k"]
    assert cand.family == -1 and det._keeps_beat(cand) and not det._keeps_clock(cand)


def _members(det: CohortDetector, keys: range, every_hours: float, start_ms: int, prefix: str = "s",
             steady: bool = True, gap_ms: int = 600_000) -> list[dict]:
    """Keys that each keep to one item family (10 long-answered requests ``gap_ms`` apart, on
    a timer's beat if ``steady``, else at a person's bursty pace), one every ``every_hours``
    from ``start_ms``."""
    alerts = []
    for k in keys:
        start = start_ms + int((k - keys.start) * every_hours * 3_600_000)
        times = _gaps(random.Random(f"{prefix}{k}"), 10, gap_ms, steady)
        for i, at in enumerate(times):
            alerts += det.learn_one(LinkRecord(f"{prefix}{k}", f"a{k}", start + at, 0.0, 0, 0,
                                               output_tokens=500, account_created_ms=start - DAY_MS,
                                               key_events=i + 1, family=content_family(item(0)),
                                               item=hash((prefix, k, i)) & 0xFFFF_FFFF))
    return alerts


def test_ordinary_users_after_a_wave_are_not_named_in_its_incident():
    # A wave of 30 members in 2 days, then 3 weeks of ordinary young users keeping to the same
    # family at their usual rate (one every 8 hours, 6 per window): the incident names the
    # wave only; it is not open for good.
    det = CohortDetector(min_members=12)
    wave = _members(det, range(30), 1.5, T0, prefix="w")
    after = _members(det, range(63), 8.0, T0 + 4 * DAY_MS, prefix="u")  # once the wave left the window
    assert wave and set(wave[-1]["api_key_ids"]) == {f"w{k}" for k in range(30)}
    assert not any(key.startswith("u") for a in after for key in a["api_key_ids"])


def test_a_family_busy_with_ordinary_young_users_needs_a_bigger_wave():
    # A week of 10 ordinary young users per window (under the floor, here 12), then 14 in one window:
    # ordinary for this family (its baseline: 3 x 10 per window), no incident. The same 14
    # in a quiet family are a wave.
    busy = CohortDetector(min_item_members=12)
    assert not _members(busy, range(35), 4.8, T0, prefix="u", steady=False)
    assert not _members(busy, range(14), 3.0, T0 + 7 * DAY_MS + 3_600_000, prefix="w", steady=False)
    quiet = CohortDetector(min_item_members=12)
    assert _members(quiet, range(14), 3.0, T0 + 7 * DAY_MS + 3_600_000, prefix="w", steady=False)


def test_a_small_cohort_in_a_quiet_item_family_is_a_wave():
    # The sealed adaptive stream's campaigns average about 12 keys: a floor of 12 let cohorts of
    # 8-11 through. In a family of an item's shape (options here) 9 members in a quiet family
    # within the window are a wave; 7 are not.
    small = CohortDetector()
    found = _members(small, range(9), 3.0, T0, prefix="w", steady=False)
    assert found and set(found[-1]["api_key_ids"]) == {f"w{k}" for k in range(9)}
    assert not _members(CohortDetector(), range(7), 3.0, T0, prefix="w", steady=False)


def test_a_free_form_family_keeps_the_larger_floor():
    # Free-form is the shape of ordinary chat: chance groups of 8-11 casual young keys made
    # waves there at the item floor (fabricated-conversations-b +1000, -c +1000, obfuscated-b
    # +2000: 3-4 casual keys named at warning each). 10 sweepers are no wave; 13 are.
    assert not cohort_alerts(replay(free_form_wave(sweepers=10)))
    found = cohort_alerts(replay(free_form_wave(sweepers=13)))
    assert found and found[-1]["api_key_ids"] == [f"key{k:03d}" for k in range(13)]


def test_a_wave_on_a_timers_beat_stands_out_in_a_family_busy_with_people():
    # The same busy family: its ordinary young users send at a person's pace. 14 members each
    # on a timer's beat are more such members than its history predicts (none): a wave.
    # (stress-unwrapped +2000: a hydra's young heads, on its rotation's beat, hid among a
    # free-form family's 45 ordinary young users.) Were its users on a beat too, they are the
    # family's history of paced members, and 14 more are no wave.
    busy = CohortDetector(min_item_members=12)
    assert not _members(busy, range(35), 4.8, T0, prefix="u", steady=False)
    found = _members(busy, range(14), 3.0, T0 + 7 * DAY_MS + 3_600_000, prefix="w", steady=True)
    # and people in a quick session (most gaps under a minute, bursty) while it runs
    found += _members(busy, range(4), 6.0, T0 + 7 * DAY_MS + 7_200_000, prefix="q", steady=False, gap_ms=20_000)
    assert found and set(found[-1]["api_key_ids"]) == {f"w{k}" for k in range(14)}
    assert busy._keys["q0"].at_machine_rate()  # machine-paced, and no beat: not named in this wave
    assert {r["signal"]: r["value"] for r in found[-1]["reasons"]}["linked_by"].startswith("content and pace")
    paced_users = CohortDetector(min_item_members=12)
    assert not _members(paced_users, range(35), 4.8, T0, prefix="u", steady=True)
    assert not _members(paced_users, range(14), 3.0, T0 + 7 * DAY_MS + 3_600_000, prefix="w", steady=True)


@pytest.mark.parametrize("prompt", [
    "Welche Aussage ist richtig?\nA) Berlin liegt am Rhein\nB) Berlin liegt an der Spree\nC) Berlin liegt am Main",
    "Какое утверждение верно?\nА) Москва на Неве\nБ) Москва на Москве-реке\nВ) Москва на Волге",
    "Which statement is true?\n(A) Paris is on the Rhine\n(B) Paris is on the Seine\n(C) Paris is on the Po",
])
def test_an_items_shape_is_its_family_in_any_language(prompt):
    assert family_name(content_family(prompt)).split("-")[1] == "options"


def test_an_item_reworded_in_case_and_spacing_is_the_same_item():
    assert item_fingerprint("What is  2+2?\n") == item_fingerprint("what is 2+2?")
    assert item_fingerprint("What is 2+3?") != item_fingerprint("What is 2+2?")


def test_young_keys_plain_requests_reach_the_cluster_detector():
    # Before: a plain request of a paying key was forwarded only at its 1st, 2nd, 4th, 8th...
    pipeline, state = KeyPipeline(), None
    forwarded = 0
    for i in range(20):
        ev = parse_event(event("young", i, T0 + i * 60_000, item(i), account_age_days=1))
        result = pipeline.step(state, ev)
        state = result.state
        rec = link_record(ev, result)
        forwarded += rec is not None
        if rec is not None:
            assert rec.family == content_family(item(i)) and rec.item == item_fingerprint(item(i))
    assert forwarded == 20


def test_link_records_carry_family_item_and_sketch_and_older_records_read_as_unknown():
    rec = LinkRecord("k", "a", 1, 0.0, 2, 3, family=7, item=99, simhash=2**63 + 5, opening=2**32 - 1)
    assert LinkRecord.from_bytes(rec.to_bytes()) == rec
    fields = [f.name for f in dataclasses.fields(LinkRecord)]
    older = json.loads(rec.to_bytes())[:fields.index("family")]  # a record of a worker from before the cohorts
    assert LinkRecord.from_fields(older).family == -1 and LinkRecord.from_fields(older).item == -1
    assert LinkRecord.from_fields(older).simhash == -1
    before_openings = json.loads(rec.to_bytes())[:fields.index("opening")]
    assert LinkRecord.from_fields(before_openings).opening == -1


def test_link_records_carry_how_the_prompt_opens_read_through_disguises():
    from distillguard.models.clusters import link_record_of
    from distillguard.models.features import featurize

    def opening(prompt: str, account_age_days: float = 400.0) -> int:
        ev = parse_event(event("k", 0, T0, prompt, account_age_days=account_age_days))
        return link_record_of(ev, featurize(ev), key_events=1).opening

    plain = opening("You are a lighthouse keeper. Describe your night.")
    # look-alike Cyrillic letters, a zero-width space, fullwidth letters: the same opening
    assert opening("Yоu \u200bаre a pirate captain. What do you see?") == plain
    assert opening("Ｙｏｕ ａｒｅ an astronaut on Mars.") == plain
    assert opening("Imagine you are a pirate. Describe your night.") != plain
    # Not computed for a mature key's later requests (the cohort detector reads only a key's
    # first ones): unknown.
    ev = parse_event(event("k", 0, T0, "You are a pirate.", account_age_days=400.0))
    assert link_record_of(ev, featurize(ev), key_events=500).opening == -1


def test_cohort_state_is_bounded():
    det = CohortDetector(max_keys=50, max_items=100, max_members=20, min_members=5, min_key_events=2)
    for k in range(500):
        for i in range(3):
            det.learn_one(LinkRecord(f"k{k}", "a", T0 + k * 1000 + i, 0.0, 0, 0, output_tokens=500,
                                     account_created_ms=T0, family=10, item=k * 3 + i, key_events=i + 1))
    assert len(det._keys) <= 50 and len(det._items) <= 101
    assert all(len(f.recent) <= 20 and len(f.named) <= 20 for f in det._families.values())


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("wave", ["options", "free-form with users"])
def test_a_cohort_incident_is_the_same_whichever_partition_runs_ahead(seed, wave):
    # A worker draining a backlog takes each partition's records in chunks, one partition
    # hours of event time ahead of another: the cohort is one incident under replay's id,
    # naming the same members (in a free-form family, too, where who is named depends on the
    # profiles learned so far).
    records = worker_link_records(sweep(30, 20) if wave == "options" else free_form_wave(users=20))
    rnd, queues, backlog = random.Random(seed), {}, []
    for r in records:
        queues.setdefault(r.source_partition, []).append(r)
    while any(queues.values()):
        for q in queues.values():
            n = rnd.randint(20, 300)
            backlog += q[:n]
            del q[:n]

    # A later record of another key: pending updates fall due on any record (as in a live stream).
    later = LinkRecord("other", "acct-other", max(r.ts_ms for r in records) + 3_600_000, 0.0, 0, 0)

    def incidents(ordered):
        det, found = ClusterDetector(), {}
        for r in ordered + [later]:
            for a in cohort_alerts(det.observe_link(r)):
                found.setdefault(a["alert_id"], set()).update(a["api_key_ids"])
        return found

    assert incidents(backlog) == incidents(records) and len(incidents(records)) == 1


def test_keys_already_linked_by_shared_infrastructure_are_not_named_again_as_a_cohort():
    # A hydra of young keys on one payment method, sending styled items: the cluster detector
    # links and names it; the same keys are no second (cohort) incident to act on.
    raws = [raw.replace(b'"pf-key', b'"pf-shared-key').replace(b'fits best?', b'fits best? Think step by step.')
            for raw in sweep(30, 20, enrol_hours=0.05)]
    raws = [json.dumps(dict(json.loads(r), account={**json.loads(r)["account"], "payment_fingerprint": "pf-shared"}))
            .encode() for r in raws]
    alerts = replay(raws)
    assert any(a["entity_type"] == "cluster" and not cohort_alerts([a]) for a in alerts)
    assert not cohort_alerts(alerts)


def test_a_sketch_longer_than_its_byte_counters_is_a_config_error():
    with pytest.raises(ConfigError):
        CohortDetector(sketch_events=256)


FREE_FORM = content_family("Write a short essay on why lighthouses were automated, with two examples from history, "
                           "and what the keepers did afterwards.")


def _simhash(r: random.Random, block: int | None, bias: float = 0.75, width: int = 12) -> int:
    """A prompt's SimHash: each bit a fair coin, but the ``block``-th run of ``width`` bits set
    with ``bias`` (one item set's vocabulary leans some bits alike; None: ordinary content)."""
    return sum((r.random() < (bias if block is not None and block * width <= b < (block + 1) * width else 0.5)) << b
               for b in range(64))


def _established_traffic(r: random.Random, start_ms: int = T0 - DAY_MS) -> list[LinkRecord]:
    """Ordinary traffic of 300 established keys from ``start_ms``: 4,000 requests 20 s apart,
    about what everyone asks about (the detector's picture of ordinary traffic)."""
    return [LinkRecord(f"old{i % 300}", "a", start_ms + i * 20_000, 0.0, 0, 0, output_tokens=300,
                       account_created_ms=T0 - 400 * DAY_MS, simhash=_simhash(r, None)) for i in range(4000)]


def _gaps(r: random.Random, n: int, mean_ms: int, steady: bool) -> list[int]:
    """``n`` request times from 0: ``mean_ms`` apart on a timer's beat (``steady``), or at
    random (exponential gaps, as bursty as people are: their variation is about 1)."""
    times, t = [], 0
    for _ in range(n):
        times.append(t)
        t += mean_ms if steady else max(1, int(r.expovariate(1 / mean_ms)))
    return times


def _cohorts_in_one_family(cohorts: int, members: int, users: int, gap_ms: int,
                           steady: bool = False) -> list[LinkRecord]:
    """Established accounts' ordinary traffic, then ``cohorts`` cohorts sweeping the same
    free-form family at once (each its own item set: its own leaning bits; members enrolled in
    turn, 16 requests each ``gap_ms`` apart on average, exactly with ``steady``) and ``users``
    young users sending long free-form requests at a person's pace (half an hour apart on
    average, irregularly), about what everyone asks about."""
    r = random.Random(7)
    recs = _established_traffic(r)
    for n in range(cohorts * members):
        c, start = n % cohorts, T0 + n * 1_800_000
        recs += [LinkRecord(f"c{c}m{n // cohorts}", f"a{n}", start + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=start - DAY_MS, family=FREE_FORM, item=n * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, c))
                 for i, at in enumerate(_gaps(r, 16, gap_ms, steady))]
    for u in range(users):
        start = T0 + u * 3 * 3_600_000 + 600_000
        recs += [LinkRecord(f"user{u}", f"u{u}", start + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=start - DAY_MS, family=FREE_FORM, item=10**6 + u * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, None))
                 for i, at in enumerate(_gaps(r, 16, 1_800_000, steady=False))]
    return sorted(recs, key=lambda rec: rec.ts_ms)


def _named(det: CohortDetector, recs: list[LinkRecord]) -> set[str]:
    return {key for rec in recs for a in det.learn_one(rec) for key in a["api_key_ids"]}


def test_members_of_several_cohorts_sweeping_one_free_form_family_at_once_are_named():
    # Five cohorts in one free-form family at once: the wave's profile is a mix of five item
    # sets, and a member fits only its own fifth of it (before: 36 of 70 members named). Its
    # nearest members (its own cohort's) fit it; at machine rate that is enough. Young users
    # writing long requests at a person's pace meanwhile are about what everyone asks about.
    det = CohortDetector()
    alerts = [a for rec in _cohorts_in_one_family(5, 14, 15, gap_ms=20_000) for a in det.learn_one(rec)]
    named = {key for a in alerts for key in a["api_key_ids"]}
    assert sum(key.startswith("c") for key in named) >= 0.85 * 70
    assert not any(key.startswith("user") for key in named)
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}
    assert reasons["cohort_members_fit_by_nearest_members"] > 0  # the on-call human sees why


def test_a_member_at_machine_rate_needs_a_lower_nearest_members_fit_than_one_at_a_persons_pace():
    # Guard on the test above: the same cohorts at a person's pace (half an hour between
    # requests, irregularly) are held to the higher nearest-members bar, and fewer are named.
    fast, slow = CohortDetector(), CohortDetector()
    named_fast = _named(fast, _cohorts_in_one_family(5, 14, 0, gap_ms=20_000))
    named_slow = _named(slow, _cohorts_in_one_family(5, 14, 0, gap_ms=1_800_000))
    assert len(named_slow) < len(named_fast)
    assert fast._keys["c0m0"].at_machine_rate() and not slow._keys["c0m0"].at_machine_rate()


def test_machine_paced_members_judged_before_their_own_cohort_joined_are_named_once_the_wave_has_grown():
    # Five cohorts in one family at once: a cohort's first members join when few of their own
    # are among the recent members, so their nearest members are mostly other cohorts' and
    # their content does not fit. At machine rate they are judged again as the wave grows
    # (each doubling) and then fit their own cohort's members. Young users at a person's pace
    # are not named; nor are members at a person's pace judged again (their higher bar, passed
    # by chance by an ordinary user judged often enough).
    recs = _cohorts_in_one_family(5, 14, 15, gap_ms=20_000)
    det, once = CohortDetector(), CohortDetector(rejudge_growth=1e9)  # (never judged again)
    named, named_once = _named(det, recs), _named(once, recs)
    assert named_once < named and len(named) == 70  # (every member: none lost, those missed added)
    assert not any(det._keys[key].unfit for key in named)
    slow = _cohorts_in_one_family(5, 14, 15, gap_ms=1_800_000)
    assert _named(CohortDetector(), slow) == _named(CohortDetector(rejudge_growth=1e9), slow)
    with pytest.raises(ConfigError):
        CohortDetector(rejudge_growth=1.0)


def test_members_sending_on_a_timers_beat_are_machine_paced_however_slow():
    # The same cohorts half an hour apart, but on a timer's beat (a proxy hydra's scheduler:
    # stress-judging-a's sends every 6.5 minutes, gap variation 0.05): no person keeps that
    # beat, so they are held to the machine-rate fit and named as the fast ones are. Young
    # users at a person's pace beside them (bursty gaps) are still not named.
    steady, slow = CohortDetector(), CohortDetector()
    alerts = [a for rec in _cohorts_in_one_family(5, 14, 15, gap_ms=1_800_000, steady=True)
              for a in steady.learn_one(rec)]
    named_steady = {key for a in alerts for key in a["api_key_ids"]}
    named_slow = _named(slow, _cohorts_in_one_family(5, 14, 15, gap_ms=1_800_000))
    assert sum(key.startswith("c") for key in named_steady) >= 0.85 * 70 > len(named_slow)
    assert not any(key.startswith("user") for key in named_steady)
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}  # (what the on-call human reads: why)
    assert reasons["cohort_machine_paced_members"] == len(alerts[-1]["api_key_ids"])
    member = steady._keys["c0m0"]
    assert member.quick_gaps == 0 and member.gap_variation() < 0.01 and steady._machine_paced(member)
    # (under the beat rule's bar, or too few gaps to tell: not machine-paced)
    assert not CohortDetector(max_paced_variation=0.0)._machine_paced(member)
    assert not steady._machine_paced(_Candidate(0, events=3, gap_sum=2.0, gap_squares=2.0))


def test_nearest_members_are_the_members_of_ones_own_cohort():
    # A member's nearest members' pooled sketch fits it far better than the mixed wave's does.
    det = CohortDetector()
    for rec in _cohorts_in_one_family(5, 14, 0, gap_ms=20_000):
        det.learn_one(rec)
    fam = det._families[det._keys["c0m0"].family]
    key = next(k for k in fam.recent if k.startswith("c0"))
    sketch = fam.recent[key][1]
    assert det._neighbour_affinity(fam.recent, key, sketch) > det._affinity(fam, sketch) + 0.3


def test_members_that_began_in_the_window_before_a_wave_opened_are_named_if_their_content_fits():
    # A cohort whose first members trickle in (one every 10 hours: never 12 in a window) before
    # the wave proper (14 in 14 hours, two days later), its items of a vocabulary of their own
    # (the bits they lean, 0.9). The incident opens on the members
    # around its 12th, but a cohort's members that began within the window before its earliest
    # named member belong to it as much as those within the window after: named too, if they
    # are about what the wave is about and nearly every answer was long. Not named: a young
    # evaluation of the same family with short graded answers, a young user whose options
    # items are about what everyone asks about, a member that began two windows earlier.
    r = random.Random(3)
    hour = 3_600_000
    recs = _established_traffic(r, start_ms=T0 - 3 * DAY_MS)

    def member(key: str, start: int, *, block: int | None = 0, tokens=lambda i: 600) -> None:
        recs.extend(LinkRecord(key, f"a-{key}", start + i * 600_000, 0.0, 0, 0, output_tokens=tokens(i),
                               account_created_ms=start - DAY_MS, family=OPTIONS,
                               item=zlib.crc32(f"{key}/{i}".encode()), key_events=i + 1, simhash=_simhash(r, block, bias=0.9))
                    for i in range(10))

    member("too-early", T0 - 40 * hour)
    for k in range(4):
        member(f"early{k}", T0 + k * 10 * hour)
    member("eval", T0 + 5 * hour, tokens=lambda i: 600 if i < 4 else 40)
    member("user", T0 + 15 * hour, block=None)
    for k in range(14):
        member(f"wave{k}", T0 + 60 * hour + k * hour)
    recs.sort(key=lambda rec: rec.ts_ms)
    named = _named(CohortDetector(), recs)
    assert {f"wave{k}" for k in range(14)} | {f"early{k}" for k in range(4)} == named


OPTIONS = content_family("Which statement is true?\n(A) Paris is on the Rhine\n(B) Paris is on the Seine\n"
                         "(C) Paris is on the Po")
CHAT = content_family("thanks, and how long should I let the dough rest before baking it?")


def _camouflaged(prefix: str, keys: int, leaning: int | None, r: random.Random,
                 steady: bool = True) -> list[LinkRecord]:
    """``keys`` young keys, each 16 requests a minute apart (on a timer's beat, or on average at
    a person's pace): 10 items of answer options (their SimHash leaning ``leaning``'s bits,
    None: ordinary content) interleaved with 6 chat turns."""
    recs = []
    for k in range(keys):
        start = T0 + k * 2_400_000
        times = _gaps(random.Random(f"{prefix}{k}"), 16, 60_000, steady)
        for i in range(16):
            item_request = i % 8 not in (1, 4, 6)
            recs.append(LinkRecord(f"{prefix}{k}", f"{prefix}-a{k}", start + times[i], 0.0, 0, 0, output_tokens=600,
                                   account_created_ms=start - DAY_MS, family=OPTIONS if item_request else CHAT,
                                   item=hash((prefix, k, i)) & 0xFFFF_FFFF, key_events=i + 1,
                                   simhash=_simhash(r, leaning if item_request else None)))
    return recs


def test_camouflaged_members_keeping_to_their_items_only_partly_are_named_if_their_content_fits():
    # A cohort of 20 whose members interleave chat with their slice of an exam bank (10 of 16
    # requests items: under min_family_share, so no member before), beside 15 young users who
    # send as many exam items at a person's pace but about what everyone asks about: the cohort
    # is named (its members on probation, by content), the users are not. (Users on the
    # members' own clock would be named by it: _shares_clock.)
    r = random.Random(11)
    recs = _established_traffic(r)
    recs += _camouflaged("camo", 20, 2, r) + _camouflaged("user", 15, None, r, steady=False)
    det = CohortDetector()
    alerts = [a for rec in sorted(recs, key=lambda rec: rec.ts_ms) for a in det.learn_one(rec)]
    named = {key for a in alerts for key in a["api_key_ids"]}
    assert sum(key.startswith("camo") for key in named) >= 15
    assert not any(key.startswith("user") for key in named)
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}
    # (those on a minute's beat that kept to the items over their first 4 requests joined the
    # open incident then, on probation too: members with few requests)
    assert reasons["cohort_camouflaged_members"] + reasons["cohort_members_joined_on_few_requests"] == \
        len(alerts[-1]["api_key_ids"])


def _re_sending(recs: list[LinkRecord], source_of) -> list[LinkRecord]:
    """Members m7 and later re-send, as their first two requests, two items ``source_of(c, m)``
    sent first (an item id base): the rest of each slice stays their own."""
    out = []
    for rec in recs:
        key = rec.api_key_id
        if key.startswith("c") and int(key.split("m")[1]) >= 7 and rec.key_events <= 2:
            c, m = int(key[1]), int(key.split("m")[1])
            rec = dataclasses.replace(rec, item=source_of(c, m) + rec.key_events - 1)
        out.append(rec)
    return out


def test_person_paced_members_re_sending_items_named_members_sent_are_held_to_the_machine_rate_fit():
    # Five cohorts at a person's pace (half an hour between requests): many members miss the
    # person's nearest-members bar. Later members re-sending two items that named members of
    # their cohort sent first draw on the set the incident swept: held to the machine-rate bar.
    # The same re-sending of items young users sent first (named by nothing) changes nothing,
    # and no user is named.
    def named(recs):
        return _named(CohortDetector(), recs)

    plain = _cohorts_in_one_family(5, 14, 15, gap_ms=1_800_000)
    named_plain = named(plain)

    # (the first member named: n = m * 5 + c, its items n * 100 + i, sent before any m7's)
    first_named = min(int(k.split("m")[1]) * 5 + int(k[1]) for k in named_plain if k.startswith("c"))

    def a_named_member_before(c: int, m: int) -> int:
        return first_named * 100

    named_by = {"plain": named_plain, "members": named(_re_sending(plain, a_named_member_before)),
                "users": named(_re_sending(plain, lambda c, m: 10**6 + ((m - 7) % 6) * 100))}
    members = {name: sum(k.startswith("c") for k in keys) for name, keys in named_by.items()}
    assert members["members"] >= members["plain"] + 5, members
    assert members["users"] == members["plain"], members
    assert not any(k.startswith("user") for keys in named_by.values() for k in keys)


def _young_users_beside_busy_established_keys(busy_keys: int, busy_requests: int) -> list[LinkRecord]:
    """300 established keys' ordinary requests (16 each), ``busy_keys`` established keys that
    each send ``busy_requests`` requests of one template all along (an app, a reseller: their
    records reach the detector because they are scored or sampled), and 20 young users
    writing long free-form requests at a person's pace over two days, about what everyone
    asks about."""
    r = random.Random(11)
    recs = [LinkRecord(f"old{k}", "a", T0 - DAY_MS + k * 200_000 + i * 60_000, 0.0, 0, 0, output_tokens=300,
                       account_created_ms=T0 - 400 * DAY_MS, key_events=i + 1, simhash=_simhash(r, None))
            for k in range(300) for i in range(16)]
    span = 3 * DAY_MS
    recs += [LinkRecord(f"app{k}", "b", T0 - DAY_MS + i * span // busy_requests, 0.0, 0, 0, output_tokens=500,
                        account_created_ms=T0 - 400 * DAY_MS, key_events=i + 1, simhash=_simhash(r, 0, bias=0.95,
                                                                                               width=32))
             for k in range(busy_keys) for i in range(busy_requests)]
    for u in range(20):
        start = T0 + u * 2 * 3_600_000
        recs += [LinkRecord(f"user{u}", f"u{u}", start + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=start - DAY_MS, family=FREE_FORM, item=10**6 + u * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, None))
                 for i, at in enumerate(_gaps(r, 16, 1_200_000, steady=False))]
    return sorted(recs, key=lambda rec: rec.ts_ms)


def test_ordinary_traffic_is_what_ordinary_keys_ask_about_not_what_busy_keys_send():
    # A few busy established keys (seven homework apps and three resellers on
    # product-negatives-d +2000) sent half the records the detector saw of established
    # accounts. Were ordinary traffic counted by record, it would be about their templates,
    # and young users' everyday chat, unlike a template, would fit a wave of such users: 29
    # casual keys named in one incident there. Counted by key (each key's first requests), it
    # is about what people ask.
    recs = _young_users_beside_busy_established_keys(busy_keys=8, busy_requests=2000)
    assert not _named(CohortDetector(), recs)
    # Guard: counted by record, the same traffic names the young users.
    assert sum(key.startswith("user") for key in _named(CohortDetector(background_key_events=10**9), recs)) >= 12


def test_the_background_counts_an_established_key_s_first_requests_only():
    det = CohortDetector(background_key_events=4)
    for n in range(1, 9):
        det.learn_one(LinkRecord("old", "a", T0 + n, 0.0, 0, 0, account_created_ms=T0 - 400 * DAY_MS,
                                 key_events=n, simhash=1))
    det._fold_background()
    assert det._background_total == 4 and det._background[0] == 4
    with pytest.raises(ConfigError):
        CohortDetector(background_key_events=0)


def test_the_background_counts_how_ordinary_prompts_open_and_halves_them_with_the_bits():
    det = CohortDetector(background_size=100)
    for n in range(99):
        det.learn_one(LinkRecord(f"old{n}", "a", T0 + n, 0.0, 0, 0, account_created_ms=T0 - 400 * DAY_MS,
                                 key_events=1, simhash=1, opening=_opening("Hello there" if n % 3 else "Write a")))
    rates = det._ordinary_rates()
    first, second = _opening_buckets(_opening("Hello there"))
    assert det._background_opened == 99 and sum(det._background_openings) == 2 * 99
    assert rates[64 + first] == pytest.approx(2 / 3, abs=0.01) and rates[64 + OPENINGS + second] == pytest.approx(2 / 3, abs=0.01)
    assert sum(rates[64:]) == pytest.approx(2.0)  # each hash's buckets: one opening a prompt
    det.learn_one(LinkRecord("old99", "a", T0 + 99, 0.0, 0, 0, account_created_ms=T0 - 400 * DAY_MS, key_events=1,
                             simhash=1, opening=_opening("Write a")))
    assert det._background_opened == 50 and det._background_total == 50  # halved together
    # A record of an older writer (no opening) counts its SimHash only.
    det.learn_one(LinkRecord("old100", "a", T0 + 100, 0.0, 0, 0, account_created_ms=T0 - 400 * DAY_MS, key_events=1,
                             simhash=1))
    det._fold_background()
    assert det._background_opened == 50 and det._background_total == 51


def _opening(words: str) -> int:
    """A link record's opening (``cohort.prompt_opening``) of a prompt that opens with ``words``."""
    return prompt_opening(words + " and the rest of the prompt")


# How a role-play item set's items open (gpteacher-like: "You are a renowned symbologist ...").
_ROLE_PLAY_OPENINGS = ("You are", "Imagine you", "Take the", "Pretend you", "Act as", "As a", "Role play",
                       "Assume the")


def _aged_family(heads: int, users: int, *, head_gap_ms: int, bias: float = 0.75, loose: int = 0,
                 loose_bias: float = 0.72, user_gap_ms: int = 1_800_000, openings: bool = False,
                 users_open_alike: bool = False) -> list[LinkRecord]:
    """Established accounts' ordinary traffic, then, all on accounts a year old and in one
    free-form family: ``heads`` keys of one campaign (an item set: bits leaning alike with
    ``bias``, 16 requests each ``head_gap_ms`` apart on average, irregularly), ``loose`` more of
    it whose prompts lean less (``loose_bias``), and ``users`` ordinary users writing long
    requests at their own pace (``user_gap_ms``), about what everyone asks about.

    ``openings``: the records carry how their prompts open. Ordinary prompts open in any of
    10,240 ways; the campaign's items in its item set's 8 ("You are a ...", "Imagine you are ..."); with
    ``users_open_alike`` every user's prompt opens one way of its own corpus, not the campaign's."""
    r = random.Random(11)
    recs = _established_traffic(r)
    ordinary = lambda: _opening(f"{r.choice(SUBJECT_WORDS)} {r.choice(WORDS)}") if openings else -1  # noqa: E731
    if openings:  # (four times the ordinary traffic: the campaign's first requests are in its picture too)
        recs += [dataclasses.replace(rec, ts_ms=rec.ts_ms - day * DAY_MS) for day in (1, 2, 3) for rec in recs]
        recs = [dataclasses.replace(rec, opening=ordinary()) for rec in recs]
    for h in range(heads + loose):
        start, lean = T0 + h * 1_800_000, bias if h < heads else loose_bias
        recs += [LinkRecord(f"head{h}", f"h{h}", start + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=T0 - 400 * DAY_MS, family=FREE_FORM, item=h * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, 0, bias=lean),
                            opening=_opening(r.choice(_ROLE_PLAY_OPENINGS)) if openings else -1)
                 for i, at in enumerate(_gaps(r, 16, head_gap_ms, steady=False))]
    for u in range(users):
        start = T0 + u * 1_200_000 + 600_000
        recs += [LinkRecord(f"user{u}", f"u{u}", start + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=T0 - 400 * DAY_MS, family=FREE_FORM, item=10**6 + u * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, None),
                            opening=_opening("given this") if users_open_alike else ordinary())
                 for i, at in enumerate(_gaps(r, 16, user_gap_ms, steady=False))]
    return sorted(recs, key=lambda rec: rec.ts_ms)


def test_old_users_that_each_pass_a_fit_by_chance_are_no_wave_unless_they_fit_one_another():
    # Among hundreds of ordinary old users in a family, some pass a member's fit by chance, each
    # for its own reasons (fabricated-conversations-c: ten casual users and three sweeps made a
    # wave that fitted one another by 0.49 nats). Here every user passes the nearest members'
    # fit (its bar set to pass anything); their prompts are about what everyone asks about, so
    # no 12 of them fit one another, and there is no wave.
    users = _aged_family(0, 40, head_gap_ms=20_000)
    assert not _named(CohortDetector(min_mature_neighbour_affinity=-99.0), users)
    # Guard: without the cohesion, the 40 users are a wave.
    assert len(_named(CohortDetector(min_mature_neighbour_affinity=-99.0, min_mature_wave_cohesion=-99.0),
                      users)) >= 12
    # A campaign's heads among such users fit one another, and are named.
    recs = _aged_family(20, 40, head_gap_ms=1_800_000, bias=0.8)
    assert _named(CohortDetector(), recs) == {f"head{h}" for h in range(20)}


def test_aged_heads_at_machine_rate_are_named_by_their_machine_rate_peers():
    # 30 automated heads on aged accounts among 60 old users writing long requests: the
    # family's profile is mostly the users', and no head fits it or its nearest members by the
    # mature bars. Among the mature members that sent at machine rate, the heads are each
    # other's nearest, and fit. (Leaning 0.72: at 0.68 they are each other's nearest, but no
    # group of 12 of them fits one another by 1 nat a prompt, the wave's cohesion.)
    recs = _aged_family(30, 60, head_gap_ms=20_000, bias=0.72)
    named = _named(CohortDetector(), recs)
    assert sum(key.startswith("head") for key in named) >= 12
    assert not any(key.startswith("user") for key in named)
    # Guard: without the machine-rate peers' fit, none is.
    assert not _named(CohortDetector(min_mature_machine_neighbour_affinity=99.0), recs)


def test_aged_heads_that_fit_loosely_are_named_once_their_campaign_s_incident_is_open():
    # 20 heads whose prompts lean closely alike open an incident of mature members; 20 more of
    # the campaign lean less, and fit only its named members' profile (the family's, diluted by
    # 60 old users, they do not). Without the close heads there is no incident to fit.
    named = _named(CohortDetector(), _aged_family(20, 60, head_gap_ms=1_800_000, bias=0.8, loose=20))
    assert {f"head{h}" for h in range(20)} <= named
    assert sum(key in named for key in (f"head{h}" for h in range(20, 40))) >= 8
    assert not any(key.startswith("user") for key in named)
    assert not _named(CohortDetector(), _aged_family(0, 60, head_gap_ms=1_800_000, loose=20))


def _two_aged_campaigns(seed: int) -> list[LinkRecord]:
    """Established accounts' ordinary traffic, then, all on accounts a year old, in one free-form
    family and enrolled in a shuffled order half an hour apart: campaign A's 20 heads (an item
    set: leaning bits of block 0 by 0.9), campaign B's 10 heads (block 1, 0.9) and 10 more of B
    whose prompts lean less (0.8), and 60 ordinary old users writing long requests; 16
    requests each, about half an hour apart, irregularly."""
    r = random.Random(seed)
    recs = _established_traffic(r)
    heads = [("a", 0, 0.9)] * 20 + [("b", 1, 0.9)] * 10 + [("loose_b", 1, 0.8)] * 10
    order = list(range(len(heads)))
    r.shuffle(order)
    for slot, h in enumerate(order):
        prefix, block, lean = heads[h]
        recs += [LinkRecord(f"{prefix}{h}", f"h{h}", T0 + slot * 1_800_000 + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=T0 - 400 * DAY_MS, family=FREE_FORM, item=h * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, block, bias=lean))
                 for i, at in enumerate(_gaps(r, 16, 1_800_000, steady=False))]
    for u in range(60):
        start = T0 + u * 1_200_000 + 600_000
        recs += [LinkRecord(f"user{u}", f"u{u}", start + at, 0.0, 0, 0, output_tokens=600,
                            account_created_ms=T0 - 400 * DAY_MS, family=FREE_FORM, item=10**6 + u * 100 + i,
                            key_events=i + 1, simhash=_simhash(r, None))
                 for i, at in enumerate(_gaps(r, 16, 1_800_000, steady=False))]
    return sorted(recs, key=lambda rec: rec.ts_ms)


@pytest.mark.parametrize("seed", [12, 13])
def test_a_second_campaign_s_loose_heads_fit_their_nearest_named_members(seed):
    # Campaign A opens an incident of mature members, B's close heads are named in it too. The
    # named profile is mostly A's: B's loose heads fit neither it nor their nearest mature
    # members by the mature bars, but their nearest named members are B's, and they fit those.
    recs = _two_aged_campaigns(seed)
    named = _named(CohortDetector(), recs)
    assert {f"a{h}" for h in range(20)} <= named
    assert sum(key.startswith("loose_b") for key in named) >= 3
    assert not any(key.startswith("user") for key in named)
    # Guard: without the nearest named members' fit, no loose head is named.
    assert not any(key.startswith("loose_b") for key in _named(CohortDetector(min_named_neighbour_affinity=99.0), recs))


def test_heads_whose_items_open_as_the_campaign_s_do_are_named_once_its_incident_is_open():
    # 20 heads whose prompts lean closely alike open an incident of mature members; 20 more of
    # the campaign lean too little to fit by what they are about (SimHash bits), but their items
    # open in the item set's few ways ("You are a ...", "Imagine you are ..."), as the named
    # heads' do, where ordinary prompts open in hundreds: they fit the named heads' profile.
    recs = _aged_family(20, 60, head_gap_ms=1_800_000, bias=0.8, loose=20, loose_bias=0.62, openings=True)
    det = CohortDetector()
    alerts = [a for rec in recs for a in det.learn_one(rec)]
    named = {key for a in alerts for key in a["api_key_ids"]}
    assert {f"head{h}" for h in range(20)} <= named
    loose = sum(key in named for key in (f"head{h}" for h in range(20, 40)))
    assert loose >= 10
    assert not any(key.startswith("user") for key in named)
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}
    assert reasons["cohort_members_fit_by_openings"] >= 8  # the on-call human sees why
    # Guard: by what they are about alone, few of the 20 are named.
    loose_named = _named(CohortDetector(opening_weight=0.0), recs)
    assert sum(key in loose_named for key in (f"head{h}" for h in range(20, 40))) <= 4
    # Openings are weighed once an incident is open, not to make one: 60 old users whose
    # prompts all open one way of their own corpus ("Given this paragraph ...") are no wave,
    # even when an opening weighs as much as a whole prompt's SimHash.
    alike = _aged_family(0, 60, head_gap_ms=0, openings=True, users_open_alike=True)
    assert not _named(CohortDetector(opening_weight=1.0, min_mature_neighbour_affinity=-99.0), alike)


def test_an_opening_weight_outside_0_and_1_is_a_config_error():
    with pytest.raises(ConfigError, match="opening_weight"):
        CohortDetector(opening_weight=1.5)


@pytest.mark.parametrize("user_gap_ms", [1_800_000, 20_000], ids=["a person's pace", "machine rate"])
def test_old_users_writing_long_requests_are_no_wave_of_mature_members(user_gap_ms):
    assert not _named(CohortDetector(), _aged_family(0, 90, head_gap_ms=0, user_gap_ms=user_gap_ms))


def test_a_mature_member_at_machine_rate_is_judged_by_its_machine_rate_peers_once():
    # The nearest of many members are near by chance too: an ordinary key's quick session,
    # judged again each time the family's heads grew, passed (content-cohort-aged). Judged
    # once, a member that did not fit its peers then is not named by them later.
    det = CohortDetector(min_mature_affinity=99.0, min_mature_neighbour_affinity=99.0)
    r, fam, family = random.Random(3), _Family(), member_family(FREE_FORM)

    def sketch(block):
        counts = bytearray(64)
        for _ in range(16):
            h = _simhash(r, block, bias=0.9)
            for i in range(64):
                counts[i] += h >> i & 1
        return bytes(counts), 16
    det._background, det._background_total = [500] * 64, 1000
    for k in range(20):
        fam.mature_recent[f"other{k}"] = [T0, sketch(k % 5 + 1), f"a{k}", None, True, False]
    fam.mature_recent["late"] = [T0, sketch(0), "late", None, True, False]
    assert not det._mature_fits(family, fam, "late")  # no peer about what it is about
    for k in range(20):
        fam.mature_recent[f"peer{k}"] = [T0, sketch(0), f"p{k}", None, True, False]
    assert not det._mature_fits(family, fam, "late")  # judged once
    fam.mature_recent["fresh"] = [T0, sketch(0), "fresh", None, True, False]
    assert det._mature_fits(family, fam, "fresh")


SUBJECT_WORDS = [a + b + c for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti")
                 for b in ("ba", "de", "fi", "go", "hu", "ja", "ke", "li")
                 for c in ("mon", "nar", "pex", "qui", "ril", "sot", "tav", "vug")]


def own_subject_item(user: int, n: int) -> str:
    """A multiple-choice question of ``user``'s own subject (its own 20 of 512 words), in the
    frame every such question shares."""
    r, words = random.Random(n * 7919 + user), random.Random(1000 + user).sample(SUBJECT_WORDS, 20)
    stem = " ".join(r.choice(words) for _ in range(8))
    options = "\n".join(f"({letter}) {r.choice(words)} {r.randint(1, 999)}" for letter in "ABCD")
    return f"Item {n}: which {stem} fits best?\n{options}"


def aged_users(first: int, count: int, start_day: float, items=own_subject_item) -> list[tuple[int, bytes]]:
    """``count`` keys of accounts a year old from ``start_day``, half an hour apart, 20 questions
    each at a person's pace, long answers: (ts, raw event)."""
    raws = []
    for k in range(first, first + count):
        start, key = T0 + int(start_day * DAY_MS) + (k - first) * 1_800_000, f"user{k:03d}"
        raws += [(start + at, event(key, i, start + at, items(k, i), account_age_days=400))
                 for i, at in enumerate(person_times(key, 20, 240_000))]
    return raws


def test_a_wave_of_mature_members_stands_out_from_the_family_s_own_ordinary_old_users():
    # Against chat, any multiple-choice questions fit one another by their shared frame: 45
    # aged users, each on their own subject, are a wave when the family has no history (the
    # cost of a cold start). Once 11 such users left the window, the family's own picture of
    # ordinary requests is theirs: the frame counts for nothing, and the 45 are no wave; a
    # campaign splitting one item set still is.
    def named(raws, **settings):
        found = cohort_alerts(replay([raw for _, raw in sorted(raws)], ClusterDetector(cohort=CohortDetector(**settings))))
        return set(found[-1]["api_key_ids"]) if found else set()
    assert len(named(aged_users(100, 45, 5.0))) >= 30
    assert not named(aged_users(0, 11, 0.0) + aged_users(100, 45, 5.0))
    # Guard: the 11 users' picture weighed as nothing, the 45 are a wave again (the baseline
    # of 11 mature members per window does not hold them).
    assert len(named(aged_users(0, 11, 0.0) + aged_users(100, 45, 5.0), family_ordinary_prior=1e9)) >= 12
    campaign = aged_users(100, 45, 5.0, items=lambda user, n: item(user * 20 + n))
    assert named(aged_users(0, 11, 0.0) + campaign) == {f"user{k:03d}" for k in range(100, 145)}


def _rotation(period_ms: int, **config) -> tuple[set[str], list[dict]]:
    """Ordinary traffic, then a hydra's rotation: 30 young heads enrolled a minute apart, each
    sending 12 free-form items once every ``period_ms`` (+-1 %), 24 of them about their item
    set (leaning bits) and 6 dealt items that read like anything else; and 6 young keys about
    anything, on a clock of 1.5 times the period. The named keys and the alerts."""
    r = random.Random(5)
    recs = _established_traffic(r)

    def head(key: str, j: int, leaning: int | None, period: int) -> list[LinkRecord]:
        start = T0 + j * 60_000
        return [LinkRecord(key, f"a-{key}", start + i * period + r.randint(-period // 90, period // 90), 0.0, 0, 0,
                           output_tokens=600, account_created_ms=start - DAY_MS, family=FREE_FORM,
                           item=hash((key, i)) & 0xFFFF_FFFF, key_events=i + 1, simhash=_simhash(r, leaning))
                for i in range(12)]
    for j in range(24):
        recs += head(f"head{j}", j, 3, period_ms)
    for j in range(6):
        recs += head(f"odd{j}", 24 + j, None, period_ms)
        recs += head(f"other{j}", 30 + j, None, period_ms * 3 // 2)
    det = CohortDetector(**config)
    alerts = [a for rec in sorted(recs, key=lambda rec: rec.ts_ms) for a in det.learn_one(rec)]
    return {key for a in alerts for key in a["api_key_ids"]}, alerts


def test_heads_on_the_named_members_clock_are_named_though_their_prompts_fit_nothing():
    # A rotation's heads each send once a rotation (every 30 minutes, to the minute). Six of
    # them were dealt items whose wording fits neither the wave nor their nearest members (a
    # mixed set's odd items): they keep the clock of the 24 named on their content, and are
    # named for it; six keys on a clock of their own are not. (attack-shift: 21 heads of one
    # campaign of 152, each every 6,630-6,720 s, were missed on their prompts.)
    named, alerts = _rotation(1_800_000)
    assert {f"head{j}" for j in range(24)} <= named
    assert {f"odd{j}" for j in range(6)} <= named
    reasons = {r["signal"]: r["value"] for r in alerts[-1]["reasons"]}
    assert reasons["cohort_members_on_the_named_members_clock"] >= 5  # (one may fit by chance)
    # without the rule, on their prompts alone: one at most; the keys on a clock of their own
    # are named by a chance fit of their prompts only (at machine-paced members' lower bar),
    # no more often with the rule
    unruled, _ = _rotation(1_800_000, min_clock_peers=10**6)
    assert sum(key.startswith("odd") for key in unruled) <= 1
    assert {key for key in named if key.startswith("other")} <= {key for key in unruled if key.startswith("other")}


def test_keys_at_machine_rate_are_not_named_for_their_clock():
    # At machine rate a script's gaps are the model's latency, alike for every script: no clock
    # a scheduler set.
    named, alerts = _rotation(40_000)
    assert not any(a for a in alerts
                   if {r["signal"]: r["value"] for r in a["reasons"]}["cohort_members_on_the_named_members_clock"])
