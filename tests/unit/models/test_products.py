"""Exculpatory evidence of real products: capped at info with reasons, never a free pass."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from distillguard.contracts.alert import is_exculpated
from distillguard.models import pipeline as pipeline_module
from distillguard.models.constants import ProductStatus
from distillguard.models.detectors import ConversationClaims
from distillguard.models.detectors.conversation_claims import PERSON_PRIOR, learn_person
from distillguard.models.events import RequestEvent, parse_event
from distillguard.models.features import featurize
from distillguard.models.pipeline import KeyPipeline, decode_state
from distillguard.models.products import ProductEvidence, ProductEvidenceConfig

T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)
SEVERITY = {"info": 1, "warning": 2, "critical": 3}
# A tutoring wrapper that reads as extraction (reasoning elicitation), around varied questions.
WRAPPER = "Explain step by step, showing all your reasoning, for a student: {q}"
TOPICS = ["photosynthesis", "the french revolution", "quadratic equations", "plate tectonics", "supply and demand",
          "the krebs cycle", "newton's second law", "prime factorisation", "the water cycle", "ohm's law",
          "the cold war", "cell division", "compound interest", "volcanoes", "probability of dice", "enzymes"]
FOLLOW_UPS = ["why?", "I don't get the second step", "can you give another example", "so the answer is C?",
              "what does that word mean", "thanks, and the next part?"]


def event(i: int, ts: datetime, prompt: str, key: str = "app", account_age_days: float | None = 400.0,
          usage: tuple[int, int] = (60, 600), **over) -> RequestEvent:
    parsed = parse_event(json.dumps(event_doc(i, ts, prompt, key, account_age_days, usage, **over)).encode())
    assert isinstance(parsed, RequestEvent), parsed
    return parsed


def event_doc(i: int, ts: datetime, prompt: str, key: str = "app", account_age_days: float | None = 400.0,
              usage: tuple[int, int] = (60, 600), **over) -> dict:
    """One request event v1 record (``event`` parses it)."""
    doc = {"schema": "llm.request.v1", "event_id": f"{key}-{i}", "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
           "api_key_id": key, "account_id": f"acct-{key}", "model": "m", "prompt": prompt,
           "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}
    if account_age_days is not None:
        doc["account"] = {"created_at": (T0 - timedelta(days=account_age_days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "tier": "tier3"}
    doc.update(over)
    return doc


def app_traffic(conversations: int, key: str = "app", account_age_days: float | None = 400.0,
                gap_s: float = 40.0, opened_by_key: bool = True, seed: int = 1, build=event,
                organisation: bool = True, wrapper: str = WRAPPER,
                follow_ups: list[str] = FOLLOW_UPS) -> list[RequestEvent]:
    """A homework app: each student's question in the wrapper (long answer), then short
    follow-ups ``gap_s`` apart on the same conversation; a new student a few minutes later.
    ``build``: ``event_doc`` for the records themselves. ``organisation``: the account is an
    organisation's (an app is a business's), else an individual's."""
    rng, ts, events = random.Random(seed), T0, []
    org = {"org_id": f"org-{key}"} if organisation else {}
    for c in range(conversations):
        q = f"{rng.choice(TOPICS)} (worksheet {c}, question {rng.randint(1, 40)})"
        cid = f"conv-{key}-{c}"
        turns = [wrapper.format(q=q)] + [rng.choice(follow_ups) for _ in range(rng.randint(1, 2))]
        for t, prompt in enumerate(turns):
            # a fabricated history: the item itself claims to be a later turn of a conversation
            # this key never opened
            turn = t if opened_by_key else t + 1
            events.append(build(len(events), ts, prompt, key, account_age_days, conversation_id=cid,
                                turn_index=turn, **org))
            ts += timedelta(seconds=gap_s * rng.uniform(0.8, 1.5))
        ts += timedelta(minutes=rng.uniform(2, 20))
    return events


def sweep(n: int, start: datetime, key: str = "app", first: int = 0, build=event) -> list[RequestEvent]:
    """One-shot wrapped items at machine pace: no conversations."""
    return [build(first + i, start + timedelta(seconds=3 * i), WRAPPER.format(q=f"{TOPICS[i % 16]} item {i}"), key)
            for i in range(n)]


def pipeline_with(**product_config) -> KeyPipeline:
    """A key pipeline whose product evidence has these ``ProductEvidenceConfig`` settings (a
    guard's: the evidence taken away or made stricter)."""
    pipeline = KeyPipeline()
    pipeline._products = ProductEvidence(ProductEvidenceConfig(**product_config))
    return pipeline


def run(events, pipeline: KeyPipeline | None = None) -> list[dict]:
    pipeline, states, alerts = pipeline or KeyPipeline(), {}, []
    for offset, ev in enumerate(events):
        result = pipeline.step(states.get(ev.api_key_id), ev, offset)
        states[ev.api_key_id] = result.state
        if result.alert:
            alerts.append(result.alert)
    return alerts


def worst(alerts) -> int:
    return max((SEVERITY[a["severity"]] for a in alerts), default=0)


def test_an_app_with_many_human_paced_conversations_is_info_at_most_with_its_reasons():
    alerts = run(app_traffic(150))
    assert alerts, "the wrapper reads as extraction: the key is still reported"
    assert worst(alerts) == SEVERITY["info"] and len(alerts) == 1
    reasons = {r["signal"]: r["value"] for r in alerts[0]["reasons"]}
    assert alerts[0]["reasons"][0] == {"signal": "exculpatory", "value": "app_conversations", "baseline": None,
                                       "weight": None}
    assert reasons["conversations_opened"] >= 20 and reasons["consistent_follow_up_share"] >= 0.2
    assert reasons["account_age_days"] >= 30


def test_only_a_mature_account_earns_the_cap_a_new_one_or_one_of_unknown_age_pages():
    assert worst(run(app_traffic(150, account_age_days=400.0))) == SEVERITY["info"]
    for age in (3.0, None):
        assert worst(run(app_traffic(150, account_age_days=age))) >= SEVERITY["warning"], age


def test_follow_ups_on_conversations_the_key_never_opened_are_no_evidence():
    pipeline, state = KeyPipeline(), None
    for offset, ev in enumerate(app_traffic(200, opened_by_key=False)):
        result = pipeline.step(state, ev, offset)
        state = result.state
        assert not (result.alert and any(r["signal"] == "exculpatory" for r in result.alert["reasons"]))
    st = decode_state(state)
    assert st.app_ew == 0.0 and st.convs == 0.0


def test_follow_ups_at_a_persons_pace_earn_the_cap_at_machine_pace_they_do_not():
    assert worst(run(app_traffic(150, gap_s=40.0))) == SEVERITY["info"]
    assert worst(run(app_traffic(150, gap_s=1.0))) >= SEVERITY["warning"]


def test_a_mature_app_key_that_turns_to_a_sweep_is_still_paged():
    app = app_traffic(150)
    after = datetime.fromtimestamp(app[-1].ts_ms / 1000, timezone.utc) + timedelta(hours=1)
    alerts = run(app + sweep(300, after, first=len(app)))
    as_an_app = [a for a in alerts if a["events_seen"] <= len(app)]
    assert as_an_app and worst(as_an_app) == SEVERITY["info"], "while it behaves as an app: info"
    assert worst(alerts) == SEVERITY["critical"]
    paged = next(a for a in alerts if a["severity"] != "info")
    assert all(r["signal"] != "exculpatory" for r in paged["reasons"])


# A rewriting service's frame (it asks for reasoning: words alone do not make a harvest)
REWRITE = "Rewrite the passage below step by step, explaining your reasoning for each change:\n\n{text}"
SYLLABLES = ["ka", "lo", "mir", "te", "sun", "vo", "ra", "pel", "di", "nu", "ost", "ber", "gi", "fa", "ul", "zen"]


def document(i: int, words: int = 300) -> str:
    """A customer's document: ``words`` words of its own (each document new, as a real
    service's are: its content sketch far from the last ones)."""
    rng = random.Random(i)
    return " ".join("".join(rng.choice(SYLLABLES) for _ in range(3)) for _ in range(words))


def test_templated_transformation_of_long_material_is_info_at_most_short_questions_with_long_answers_page():
    material = [event(i, T0 + timedelta(seconds=4 * i), REWRITE.format(text=document(i)), "tr", usage=(900, 850),
                      org_id="org-tr") for i in range(200)]
    alerts = run(material)
    assert alerts and worst(alerts) == SEVERITY["info"]
    assert alerts[0]["reasons"][0]["value"] == "templated_transformation" and is_exculpated(alerts[0])
    reasons = {r["signal"]: r["value"] for r in alerts[0]["reasons"]}
    assert reasons["transformed_items"] < ProductEvidenceConfig().transform_item_share
    questions = [event(i, T0 + timedelta(seconds=4 * i), REWRITE.format(text=f"passage {i}: tides"), "tr",
                       usage=(40, 900), org_id="org-tr") for i in range(200)]
    assert worst(run(questions)) >= SEVERITY["warning"]


def test_a_transformation_on_an_individuals_account_is_sent_at_info_not_held():
    """The same service on an account of no organisation: capped at info, but sent with its
    reasons (a long-context harvest under one frame on a bought aged account looks alike)."""
    material = [event(i, T0 + timedelta(seconds=4 * i), REWRITE.format(text=document(i)), "tr", usage=(900, 850))
                for i in range(200)]
    alerts = run(material)
    assert alerts and worst(alerts) == SEVERITY["info"] and not any(is_exculpated(a) for a in alerts)
    reasons = {r["signal"]: r["value"] for r in alerts[0]["reasons"]}
    assert alerts[0]["reasons"][0]["signal"] == "unverified_templated_transformation"
    assert reasons["unverified_templated_transformation"] >= ProductEvidenceConfig().transform_share
    assert "account_organisation" in reasons and reasons["account_age_days"] >= 30


def test_a_long_system_prompt_around_short_items_is_no_material_to_transform():
    """Input tokens padded by a fixed system prompt: the prompt's own share is what counts, so
    short items with long answers stay a harvest and page, on an organisation's account too."""
    padding = "You are a meticulous tutor. " * 150  # ~4,200 characters, ~1,050 tokens every request
    frame = "Explain step by step, showing all your reasoning: {q}"
    padded = [event(i, T0 + timedelta(seconds=4 * i), frame.format(q=f"{TOPICS[i % 16]} item {i}"), "pad",
                    usage=(1_070, 850), org_id="org-pad", system_prompt=padding) for i in range(200)]
    alerts = run(padded)
    assert worst(alerts) >= SEVERITY["warning"]
    assert not any(r["value"] == "templated_transformation" for a in alerts for r in a["reasons"])


def test_the_same_worked_examples_in_any_order_before_every_item_are_no_new_material():
    """The rewriting service's frame and usage (the test above: held), but its material the
    same worked examples in every prompt, shuffled into another order each time, with a short
    item after them, on an aged organisation's account: the sketches of all their words are
    alike, so there is no new material to transform, and the harvest pages."""
    examples = [f"Example task: {document(900 + j, 40)}\nExample solution: {document(950 + j, 60)}\n\n"
                for j in range(6)]  # ~3,900 characters

    def prompt(i: int) -> str:
        shuffled = "".join(random.Random(i).sample(examples, len(examples)))
        return REWRITE.format(text=f"{shuffled}Task: {TOPICS[i % 16]}, {i}.")

    padded = [event(i, T0 + timedelta(seconds=4 * i), prompt(i), "pad", usage=(900, 850), org_id="org-pad")
              for i in range(200)]
    alerts = run(padded)
    assert worst(alerts) >= SEVERITY["warning"]
    assert not any(is_exculpated(a) for a in alerts)


def test_long_context_items_with_an_answer_label_are_no_transformation():
    """A passage and a question with an answer label in every prompt, ``max_tokens`` kept
    under the ratio, on an aged organisation's account: the key answers items, it does not
    transform material, and the harvest pages (the reasons say nothing of a transformation)."""
    frame = "Read the document and answer the question at its end.\n\n{text}\n\nQuestion: {q}?\nAnswer:"
    items = [event(i, T0 + timedelta(seconds=4 * i), frame.format(text=document(i), q=f"what is {TOPICS[i % 16]}"),
                   "rc", usage=(900, 850), org_id="org-rc") for i in range(200)]
    alerts = run(items)
    assert worst(alerts) >= SEVERITY["warning"]
    assert not any(is_exculpated(a) for a in alerts)
    assert not any(r["value"] == "templated_transformation" for a in alerts for r in a["reasons"])


def test_the_conversation_ring_is_bounded_and_forgets_the_longest_idle():
    from types import SimpleNamespace

    evidence, ring = ProductEvidence(ProductEvidenceConfig()), 8
    st = SimpleNamespace(n=0, app_ew=0.0, transform_ew=0.0, convs=0.0, app_conv_ids=[0] * ring, app_conv_ts=[0] * ring)
    for c in range(ring + 1):  # one more conversation than the ring holds: the first is forgotten
        evidence.conversation_follow_up(st, f"c{c}", 0, 1_000 * (c + 1), "a question")
    assert len(st.app_conv_ids) == ring and st.convs == ring + 1
    assert not evidence.conversation_follow_up(st, "c0", 1, 60_000, "why?")
    assert evidence.conversation_follow_up(st, f"c{ring}", 1, 60_000, "why?")


def test_the_link_record_says_whether_the_keys_product_evidence_holds_and_a_turned_key_loses_it():
    """The cluster detector holds a cluster of real products at info by this flag (exculpation
    .product_cap): it must be what the key's own incident is capped by, event by event,
    or the evidence pending (an app still counting its first conversations)."""
    from distillguard.models.clusters import link_record

    app = app_traffic(150)
    after = datetime.fromtimestamp(app[-1].ts_ms / 1000, timezone.utc) + timedelta(hours=1)
    pipeline, state, flags, capped, pending = KeyPipeline(), None, [], [], []
    for offset, ev in enumerate(app + sweep(300, after, first=len(app))):
        result = pipeline.step(state, ev, offset)
        state = result.state
        st = decode_state(state)
        flags.append(result.product)
        capped.append(bool(pipeline._products.exculpation(st, ev, st.template_ew)))
        pending.append(pipeline._products.pending_status(st, ev))
        assert bool(pending[-1]) == pipeline._products.pending(st, ev)
        rec = link_record(ev, result)
        if rec is not None:
            assert rec.product == int(result.product)
    assert flags == [1 if c else int(p) for c, p in zip(capped, pending)]
    assert not any(capped[:30]) and capped[len(app) - 1], "earned once the app has its conversations"
    assert all(flags[2:len(app)]), "pending from the app's first follow-up until it is earned"
    assert not any(c and p for c, p in zip(capped, pending))
    assert not flags[-1], "lost after turning to a sweep"
    # a young account's app, or one of unknown age, never earns it
    for age in (3.0, None):
        state = None
        for offset, ev in enumerate(app_traffic(60, account_age_days=age)):
            result = KeyPipeline().step(state, ev, offset)
            state = result.state
            assert not result.product


ITEMS = ["Write about how the {} and the {} shape the {}, the {} and the {} today.",
         "Describe in detail the history of the {}, the {} and the {} for a general reader.",
         "Compare the {} with the {} and explain which suits the {} better and why."]
WORDS = ["river", "market", "engine", "garden", "library", "museum", "harbour", "factory", "forest", "railway",
         "village", "theatre", "bridge", "island", "festival", "kitchen"]


def opened_conversations(conversations: int, key: str, next_item_p: float, seed: int = 3, out: int = 600,
                         turns: tuple[int, int] = (1, 2), wrapped: bool = True,
                         wrapped_items: bool = True) -> list[RequestEvent]:
    """Conversations the key opens itself, each turn resending the history (claims that hold), at
    a person's pace, on a mature account. A follow-up is, with ``next_item_p``, a new item of its
    own; else a student's short question. ``out``: the answers' tokens; ``wrapped``: each
    conversation opens with a question in the app's wrapper, else with an item; ``wrapped_items``:
    the new items too (the app wraps every question its students ask), else plain instructions."""
    rng, ts, events = random.Random(seed), T0, []
    for c in range(conversations):
        cid, context = f"conv-{key}-{c}", 0
        for t in range(1 + rng.randint(*turns)):
            if t == 0 and wrapped:
                prompt = WRAPPER.format(q=f"{rng.choice(TOPICS)} (worksheet {c})")
            elif wrapped_items and rng.random() < next_item_p:
                prompt = WRAPPER.format(q=f"{rng.choice(TOPICS)} (worksheet {c}, question {t + 1})")
            elif t == 0 or (not wrapped_items and rng.random() < next_item_p):
                prompt = rng.choice(ITEMS).format(*rng.sample(WORDS, 5))
            else:
                prompt = rng.choice(FOLLOW_UPS)
            sent = context + len(prompt) // 4 + 8
            events.append(event(len(events), ts, prompt, key, usage=(sent, out), conversation_id=cid, turn_index=t))
            context = sent + out
            ts += timedelta(seconds=40 * rng.uniform(0.8, 1.5))
        ts += timedelta(minutes=rng.uniform(2, 20))
    return events


def _final_state(events):
    pipeline, state = KeyPipeline(), None
    for offset, ev in enumerate(events):
        state = pipeline.step(state, ev, offset).state
    return decode_state(state)


def test_an_app_whose_students_also_paste_their_next_question_stays_at_info(monkeypatch):
    # Four follow-ups in ten are the student's next question, pasted into the conversation and
    # wrapped by the app: new items, yet the key's follow-ups are a person's (the rest are
    # "why?"), so they stay conversation turns and the app stays at info.
    traffic = opened_conversations(150, "app", next_item_p=0.4)
    alerts = run(traffic)
    assert alerts and worst(alerts) == SEVERITY["info"]
    gated = _final_state(traffic)
    assert gated.person_ew >= 0.3
    assert all(r["signal"] != "follow_ups_a_persons_share" for a in alerts for r in a["reasons"])

    # Without the person share (every held new item out of conversation, the rule as first
    # written) the pasted questions stop counting as turns.
    class Ungated(ConversationClaims):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, person_share=2.0, **kwargs)

    monkeypatch.setattr(pipeline_module, "ConversationClaims", Ungated)
    assert _final_state(traffic).followup_ew < gated.followup_ew - 0.1


def test_a_sweep_of_items_sent_as_turns_at_a_persons_pace_is_not_an_app():
    # Every follow-up is the next plain item (claims hold, history resent, a person's pace),
    # answered at length: consistent follow-ups by the app's measure. Before the person share
    # the app evidence held and capped such keys at info (stress-fabricated-conversations-c).
    events = opened_conversations(120, "sweep", next_item_p=1.0, out=1500, turns=(4, 8), wrapped=False,
                                  wrapped_items=False)
    alerts = run(events)
    assert alerts and all(r["signal"] != "exculpatory" for a in alerts for r in a["reasons"])
    st = _final_state(events)
    assert st.app_ew >= 0.2 and st.convs >= 20 and st.person_ew < 0.15
    assert not st.app_held and not ProductEvidence().holds(st, events[-1], st.template_ew)
    # the person share is what keeps it out: without that bar the app evidence holds
    ungated, state = pipeline_with(app_min_person_share=0.0), None
    for offset, event in enumerate(events):
        state = ungated.step(state, event, offset).state
    assert decode_state(state).app_held == 1.0


def three_turn_app(conversations: int, key: str = "app", seed: int = 5, pf: str | None = None,
                   start: datetime = T0) -> list[RequestEvent]:
    """A homework app whose students ask two or three follow-ups on each question: about 3.5
    events a conversation, so at a key's 50th event (when its incident may open) it has opened
    14-15 conversations, short of the 20 its evidence counts."""
    def build(i, ts, prompt, key, age, **over):
        doc = event_doc(i, ts, prompt, key, age, **over)
        if pf is not None:
            doc["account"]["payment_fingerprint"] = pf
        return parse_event(json.dumps(doc).encode())

    rng, ts, events = random.Random(seed), start, []
    for c in range(conversations):
        cid = f"conv-{key}-{c}"
        turns = [WRAPPER.format(q=f"{rng.choice(TOPICS)} (worksheet {c}, question {rng.randint(1, 40)})")]
        turns += [rng.choice(FOLLOW_UPS) for _ in range(rng.randint(2, 3))]
        for t, prompt in enumerate(turns):
            events.append(build(len(events), ts, prompt, key, 400.0, conversation_id=cid, turn_index=t,
                                org_id=f"org-{key}"))
            ts += timedelta(seconds=40 * rng.uniform(0.8, 1.5))
        ts += timedelta(minutes=rng.uniform(2, 20))
    return events


def _pending_off() -> ProductEvidence:
    return ProductEvidence(ProductEvidenceConfig(app_pending_share=2.0))


def test_an_apps_incident_waits_for_its_evidence_instead_of_opening_before_it_can_be_judged():
    """At its 50th event the app has 14-15 conversations: without the wait its incident opens
    there, uncapped (the warning that paged homework apps in product-negatives-c); with it, the
    first alert is the exculpated one, once 20 conversations are in."""
    app = three_turn_app(60)
    convs_at_50 = decode_state(_states(app[:50])["app"]).convs
    assert 10 <= convs_at_50 < ProductEvidenceConfig().app_min_conversations
    alerts = run(app)
    assert alerts and worst(alerts) == SEVERITY["info"]
    assert alerts[0]["reasons"][0]["value"] == "app_conversations", "no alert before the evidence is judged"
    assert alerts[0]["events_seen"] > 50
    # guard: the same traffic without the wait opens an uncapped incident at its 50th event
    pipeline = KeyPipeline()
    pipeline._products = _pending_off()
    early = run(app, pipeline)
    assert early and early[0]["events_seen"] == 50
    assert all(r["signal"] != "exculpatory" for r in early[0]["reasons"])


def test_the_wait_is_bounded_a_key_whose_evidence_never_comes_alerts_by_its_100th_event():
    """A key that keeps its follow-ups a person's but never reaches the conversations the
    evidence needs (here: the bar set out of reach) is judged at app_pending_max_events."""
    app = three_turn_app(60)
    pipeline = pipeline_with(app_min_conversations=10**6)
    alerts = run(app, pipeline)
    assert alerts and alerts[0]["events_seen"] == ProductEvidenceConfig().app_pending_max_events
    assert all(r["signal"] != "exculpatory" for r in alerts[0]["reasons"])


def test_a_sweep_without_follow_ups_on_a_mature_account_is_never_pending():
    """Pending needs follow-ups: a sweep's incident opens where it did (the wait off)."""
    items = sweep(120, T0, key="sweeper")
    with_wait = run(items)
    pipeline = KeyPipeline()
    pipeline._products = _pending_off()
    assert with_wait and with_wait == run(items, pipeline)
    pipeline, state = KeyPipeline(), None
    for offset, ev in enumerate(items):
        result = pipeline.step(state, ev, offset)
        state = result.state
        assert not result.product


def cluster_alerts(events, pipeline: KeyPipeline | None = None) -> list[dict]:
    """The cluster alerts of ``events`` (in time order), their link records from ``pipeline``."""
    from distillguard.models.clusters import ClusterDetector, link_record

    pipeline, states, detector, alerts = pipeline or KeyPipeline(), {}, ClusterDetector(), []
    for offset, ev in enumerate(sorted(events, key=lambda e: e.ts_ms)):
        result = pipeline.step(states.get(ev.api_key_id), ev, offset)
        states[ev.api_key_id] = result.state
        rec = link_record(ev, result)
        if rec is not None:
            alerts += [a for a in detector.observe_link(rec) if a["entity_type"] == "cluster"]
    return alerts


def test_a_cluster_of_apps_on_one_template_is_at_info_from_its_first_events():
    """Twelve mature customers' app keys sharing a payment fingerprint and the tutoring wrapper
    link after a few events a key, long before any has 20 conversations: their link records
    carry the pending evidence, so the cluster opens at info. Guard: without the wait it pages."""
    events = sorted((ev for k in range(12) for ev in three_turn_app(
        25, key=f"app{k}", seed=k, pf="pf-template", start=T0 + timedelta(minutes=3 * k))),
        key=lambda ev: ev.ts_ms)

    def with_products(products: ProductEvidence) -> KeyPipeline:
        pipeline = KeyPipeline()
        pipeline._products = products
        return pipeline

    held = cluster_alerts(events)
    assert held, "the wrapper reads as extraction: the cluster is still reported"
    assert {a["severity"] for a in held} == {"info"}
    first = {r["signal"]: r["value"] for r in held[0]["reasons"]}
    assert first["exculpatory"] == "product_members"
    assert first["members_with_evidence_pending"] >= 1, "says the cap waits on evidence being counted"
    assert first["members_with_product_evidence"] + first["members_with_evidence_pending"] \
        == len(held[0]["api_key_ids"])
    paged = cluster_alerts(events, with_products(_pending_off()))
    assert paged and paged[0]["severity"] != "info"


def _states(events) -> dict:
    pipeline, states = KeyPipeline(), {}
    for offset, ev in enumerate(events):
        states[ev.api_key_id] = pipeline.step(states.get(ev.api_key_id), ev, offset).state
    return states


QUIZ = "Generate 10 multiple-choice questions about {topic} for grade 7 students, with the correct answer and an " \
       "explanation for each."


def quiz_traffic(pattern: str, key: str = "quiz", seed: int = 3, start: datetime = T0) -> list[RequestEvent]:
    """A quiz maker for teachers: each teacher's request in the app's template, answered with the
    whole quiz (1,500 tokens), and, where ``pattern`` says ``f``, the teacher's short request for
    changes a minute later in the same conversation (``-``: none)."""
    rng, ts, events = random.Random(seed), start, []
    for c, mark in enumerate(pattern):
        cid = f"conv-{key}-{c}"
        turns = [QUIZ.format(topic=f"{rng.choice(TOPICS)} (class {c})")]
        if mark == "f":
            turns.append("make them a bit harder")
        for t, prompt in enumerate(turns):
            events.append(event(len(events), ts, prompt, key, usage=(40, 1500 if t == 0 else 900), conversation_id=cid,
                                turn_index=t, org_id=f"org-{key}"))
            ts += timedelta(seconds=rng.uniform(50, 90))
        ts += timedelta(minutes=rng.uniform(2, 10))
    return events


def test_an_app_whose_follow_ups_dip_for_a_while_keeps_its_evidence_and_a_key_that_turns_loses_it():
    # Teachers ask for changes after every second quiz, then for 14 quizzes in a row nobody does
    # (the share dips to about 0.16, under the app's bar of 0.2), then they do again.
    pattern = "f-" * 25 + "-" * 14 + "f-" * 25
    traffic = quiz_traffic(pattern)
    shares, pipeline, state = [], KeyPipeline(), None
    for offset, ev in enumerate(traffic):
        state = pipeline.step(state, ev, offset).state
        shares.append(decode_state(state).app_ew)
    assert min(shares[60:]) < ProductEvidenceConfig().app_follow_up_share < max(shares[60:])
    alerts = run(traffic)
    assert alerts and worst(alerts) == SEVERITY["info"]
    assert all(a["reasons"][0]["value"] == "app_conversations" for a in alerts)
    share = next(r for r in alerts[-1]["reasons"] if r["signal"] == "consistent_follow_up_share")
    assert share["baseline"] == ProductEvidenceConfig().app_release_share  # the bar it is held against
    # Guard: let go at the app's own bar (no hysteresis, no long-run share), the dip escalates the
    # incident for good.
    flapping = pipeline_with(app_release_share=0.2, app_memory_share=1.0)
    assert worst(run(traffic, flapping)) >= SEVERITY["warning"]
    # A key that turns to one-shot items asks no follow-ups: it loses the evidence and pages.
    after = datetime.fromtimestamp(traffic[-1].ts_ms / 1000 + 300, timezone.utc)
    turned = run(traffic + sweep(120, after, key="quiz", first=len(traffic)))
    assert worst(turned) == SEVERITY["critical"] and "exculpatory" not in {r["signal"] for r in turned[-1]["reasons"]}


def test_a_quiet_spell_of_a_long_time_app_keeps_its_evidence_and_a_key_that_turns_still_pages_soon():
    # Teachers ask for changes after every second quiz for 80 quizzes, then batch-write 26 in a row
    # without asking (the short-run share falls to about 0.07, under its release bar of 0.1: the
    # quiz maker of product-negatives-h was paged at critical there), then ask again.
    pattern = "f-" * 40 + "-" * 26 + "f-" * 20
    traffic = quiz_traffic(pattern)
    pipeline, state, lowest = KeyPipeline(), None, (1.0, 0.0)
    for offset, ev in enumerate(traffic):
        state = pipeline.step(state, ev, offset).state
        st = decode_state(state)
        if offset > 120 and st.app_ew < lowest[0]:
            lowest = (st.app_ew, st.app_memory)
    config = ProductEvidenceConfig()
    assert lowest[0] < config.app_release_share and lowest[1] >= config.app_memory_share, lowest
    alerts = run(traffic)
    assert alerts and worst(alerts) == SEVERITY["info"]
    assert all(a["reasons"][0]["value"] == "app_conversations" for a in alerts)
    long_run = next(r for r in alerts[0]["reasons"] if r["signal"] == "long_run_follow_up_share")
    assert long_run["baseline"] == config.app_memory_share and 0.0 < long_run["value"] <= config.app_memory_cap
    # Guard: without the long-run share the quiet spell lets the evidence go and the key pages.
    forgetful = pipeline_with(app_memory_share=1.0)
    assert worst(run(traffic, forgetful)) >= SEVERITY["warning"]
    # A key that turns after that history asks no follow-ups again: paged within about 60 items.
    after = datetime.fromtimestamp(traffic[-1].ts_ms / 1000 + 300, timezone.utc)
    turned = run(traffic + sweep(120, after, key="quiz", first=len(traffic)))
    paged = next(a for a in turned if a["severity"] == "critical")
    assert paged["events_seen"] - len(traffic) <= 60
    assert "exculpatory" not in {r["signal"] for r in paged["reasons"]}


def test_a_new_quiz_makers_key_stays_pending_over_its_first_requests_between_its_first_follow_ups():
    # A teacher asks for a change after the 2nd quiz, then nobody does for eight: over the key's
    # first 20 requests its share is a mean of a handful of turns (one follow-up in 11: 0.09)
    traffic = quiz_traffic("-f" + "-" * 8 + "f-" * 15, key="newquiz")
    statuses = [status for status, _, _ in _statuses(traffic)]
    first = next(i for i, ev in enumerate(traffic) if ev.turn_index)
    assert all(s != ProductStatus.NONE for s in statuses[first:20]), statuses[:20]
    # Guard: at the full bar from the first request, the key falls out of pending on the way, where
    # a campaign's cluster that links it by the same frame names it
    strict = pipeline_with(pending_early_events=0)
    assert any(s == ProductStatus.NONE for s, _, _ in _statuses(traffic, strict)[first:20])
    # Past its first 20 events the full bar: a mature key whose follow-ups are this rare is no app
    sparse = quiz_traffic("-f" + "-" * 8 + "f" + "-" * 40, key="sparse")
    assert _statuses(sparse)[-1][0] == ProductStatus.NONE


# Students' follow-ups of a few words (a person's by the share's count), and of more (not).
FEW_WORDS = ["tai sao?", "why?", "so the answer is C?"]
# (follow-ups of four to six content words in any language's count: multilingual.turn_words)
MORE_WORDS = ["can you redo the second step with smaller numbers", "my teacher solved this with a different formula",
              "please check whether my homework answer matches yours",
              "explain the last paragraph of the proof once more slowly"]


def person_dip_app(pattern: str, key: str = "app", seed: int = 7) -> list[RequestEvent]:
    """An app's conversations, one follow-up each: of a few words (``p``) or of more (``l``)."""
    rng, ts, events = random.Random(seed), T0, []
    for c, kind in enumerate(pattern):
        q = f"{rng.choice(TOPICS)} (worksheet {c}, question {rng.randint(1, 40)})"
        for t, prompt in enumerate([WRAPPER.format(q=q), rng.choice(FEW_WORDS if kind == "p" else MORE_WORDS)]):
            events.append(event(len(events), ts, prompt, key, conversation_id=f"conv-{key}-{c}", turn_index=t,
                                org_id=f"org-{key}"))
            ts += timedelta(seconds=40 * rng.uniform(0.8, 1.5))
        ts += timedelta(minutes=rng.uniform(2, 20))
    return events


def test_an_apps_evidence_survives_a_dip_of_its_person_share_and_is_released_under_half_its_bar():
    # 21 follow-ups in a row of more than a few words bring the person share from ~1 to ~0.11:
    # under the bar the evidence is earned at (0.15), over the one it is released at (0.075).
    config = ProductEvidenceConfig()
    traffic = person_dip_app("p" * 60 + "l" * 21 + "p" * 40)
    pipeline, state, person = KeyPipeline(), None, []
    for offset, ev in enumerate(traffic):
        state = pipeline.step(state, ev, offset).state
        person.append(decode_state(state).person_ew)
    assert config.app_release_person_share < min(person[120:]) < config.app_min_person_share
    assert worst(run(traffic)) == SEVERITY["info"]
    # Guard: released at the bar it is earned at, the dip pages the app (stress stream
    # product-negatives-j, +1000: a Vietnamese homework app's key at critical).
    flapping = pipeline_with(app_release_person_share=config.app_min_person_share)
    assert worst(run(traffic, flapping)) == SEVERITY["critical"]
    # Under half the bar, the evidence is let go.
    assert worst(run(person_dip_app("p" * 60 + "l" * 30 + "p" * 40))) == SEVERITY["critical"]


# A Vietnamese homework app: its frame, and its students' follow-ups ("I don't get step two",
# "how do I remember this for the test", "why is it like that?", "explain it more simply",
# "my teacher solved it differently"): five to seven syllables, each written as a word.
VI_WRAPPER = "Giải thích từng bước cho học sinh: {q}"
VI_FOLLOW_UPS = ["mình không hiểu bước hai", "làm sao nhớ cái này để thi", "tại sao lại như vậy?",
                 "giải thích đơn giản hơn được không", "cô giáo mình giải khác"]


def test_a_homework_app_in_vietnamese_holds_a_persons_share_of_follow_ups_counted_as_english_it_did_not():
    events = app_traffic(80, "vi-app", seed=11, wrapper=VI_WRAPPER, follow_ups=VI_FOLLOW_UPS)
    st = _final_state(events)
    config = ProductEvidenceConfig()
    assert st.person_ew >= config.app_min_person_share and st.app_held
    assert worst(run(events)) <= SEVERITY["info"]
    # Guard: counted as English words (one per syllable), its follow-ups were seldom a person's
    # few words, and the person share fell under the bar (stress-product-negatives-j).
    claims, person = ConversationClaims(), PERSON_PRIOR
    for ev in events:
        if ev.turn_index > 0:
            person = learn_person(person, featurize(ev).content_words, claims.person_words, claims.person_alpha)
    assert person < config.app_min_person_share


def _statuses(events, pipeline: KeyPipeline | None = None) -> list[tuple[int, float, float]]:
    """(product status, app_ew, conversations) after each event of one key."""
    pipeline, state, out = pipeline or KeyPipeline(), None, []
    for offset, ev in enumerate(events):
        result = pipeline.step(state, ev, offset)
        state = result.state
        st = decode_state(state)
        out.append((int(result.product), st.app_ew, st.convs))
    return out


def test_an_app_judged_at_its_20th_conversation_short_of_the_bar_stays_pending_until_it_holds():
    """A quiz maker whose teachers ask for changes after about a sixth of their first quizzes,
    then a third: at its 20th conversation the raw average (its first event's zero still weighs
    a third of it) reads under the app's 0.2. Judged on that, the key fell from pending to no
    evidence there, and a campaign's cluster named it in that gap (product-negatives-h). Its
    share without that weight is over the release bar: it stays pending, then holds."""
    pattern = "-----f" * 4 + "--f" * 20
    statuses = _statuses(quiz_traffic(pattern, seed=7))
    at_20 = next(i for i, (_, _, convs) in enumerate(statuses) if convs >= 20)
    assert statuses[at_20][1] < ProductEvidenceConfig().app_follow_up_share, "guard: the raw average is short"
    assert all(status for status, _, _ in statuses[at_20:]), "pending from its 20th conversation until it holds"
    assert statuses[-1][0] == 1, "the app's evidence holds in the end"
    assert worst(run(quiz_traffic(pattern, seed=7))) <= SEVERITY["info"]


def test_an_organisations_new_key_is_pending_while_each_of_its_first_requests_opens_a_conversation():
    """Before any teacher could ask for a change, an organisation's new quiz key is pending (its
    link record counts as a product's for a cluster, not for a content cohort: an item sweep
    opens a conversation per item too) until its 10th event; then the follow-ups must show."""
    quizzes = quiz_traffic("-" * 12)

    def rebuilt(conversation=lambda i, ev: {}, org_id: str | None = "org-school") -> list[RequestEvent]:
        """The same quizzes on an organisation's account (``org_id``; None: an individual's), each
        with ``conversation(i, ev)``'s fields."""
        return [event(i, datetime.fromtimestamp(ev.ts_ms / 1000, timezone.utc), ev.prompt, "quiz", usage=(40, 1500),
                      org_id=org_id, **conversation(i, ev)) for i, ev in enumerate(quizzes)]

    opened = lambda i, ev: {"conversation_id": ev.conversation_id, "turn_index": 0}  # noqa: E731
    org = rebuilt(opened)
    statuses = [s for s, _, _ in _statuses(org)]
    opening = ProductEvidenceConfig().app_opening_events
    assert statuses[:opening - 1] == [ProductStatus.FIRST_USERS_PENDING] * (opening - 1)
    assert not any(statuses[opening - 1:])
    # not an individual's account, not requests without conversations, not a claimed history
    assert not any(s for s, _, _ in _statuses(rebuilt(opened, org_id=None)))
    assert not any(s for s, _, _ in _statuses(rebuilt()))
    claimed = rebuilt(lambda i, ev: {"conversation_id": f"c{i}", "turn_index": 3})
    assert not any(s for s, _, _ in _statuses(claimed))


def test_a_quiz_makers_new_key_sending_a_campaigns_frame_in_lockstep_is_not_named_in_its_cluster():
    """A hydra of young accounts harvests quizzes under a quiz maker's own template; the maker's
    new key, on its organisation's account, sends the same frame in the same hour. The cluster
    pages for the hydra's heads; the maker's key, pending, is not named. Guard: without the
    opening rule it is."""
    heads = [ev for h in range(6) for ev in sweep_in_frame(f"head{h}", 18, T0 + timedelta(minutes=h))]
    maker = [event(i, T0 + timedelta(minutes=7 + 9 * i), QUIZ.format(topic=f"{TOPICS[i]} (class {i})"), "maker",
                   usage=(40, 1500), conversation_id=f"maker-c{i}", turn_index=0, org_id="org-school")
             for i in range(6)]
    alerts = cluster_alerts(heads + maker)
    assert alerts and max(SEVERITY[a["severity"]] for a in alerts) >= SEVERITY["warning"]
    assert {f"head{h}" for h in range(6)} <= set(alerts[-1]["api_key_ids"])
    assert all("maker" not in a["api_key_ids"] for a in alerts)
    without = pipeline_with(app_opening_events=0)
    assert any("maker" in a["api_key_ids"] for a in cluster_alerts(heads + maker, without))


def sweep_in_frame(key: str, n: int, start: datetime) -> list[RequestEvent]:
    """A hydra head on a two-day-old account: quizzes in the maker's template, a minute apart."""
    return [event(i, start + timedelta(seconds=60 * i), QUIZ.format(topic=f"item {key}-{i} of the set"), key,
                  account_age_days=2.0, usage=(40, 1500), payment_fingerprint="pf-hydra")
            for i in range(n)]


def test_an_apps_conversations_on_an_individuals_account_are_sent_at_info_not_held():
    """A product that serves end users is a business's. On an individual's aged account (what a
    hydra buys by the thousand) the same conversations cap the incident at info, but the alert
    is sent, saying so, instead of being held as an exculpated detection: a sweep dressed as a
    tutoring app there (stress stream app-mimic) was held silently."""
    business = run(app_traffic(150))
    assert worst(business) == SEVERITY["info"] and all(is_exculpated(a) for a in business)
    individual = run(app_traffic(150, organisation=False))
    assert individual and worst(individual) == SEVERITY["info"]
    assert not any(is_exculpated(a) for a in individual), "sent: on-call sees it on the dashboard"
    reasons = {r["signal"]: r["value"] for r in individual[0]["reasons"]}
    assert individual[0]["reasons"][0]["signal"] == "unverified_app_conversations"
    assert reasons["unverified_app_conversations"] >= ProductEvidenceConfig().app_release_share
    assert reasons["conversations_opened"] >= 20 and "account_organisation" in reasons
    assert reasons["account_age_days"] >= 30
    # its link record does not count as a product's: a cluster it shares names it
    statuses = [status for status, _, _ in _statuses(app_traffic(150, organisation=False))]
    assert int(ProductStatus.HOLDS) not in statuses
    # and it is no free pass either: turned to a sweep, it pages
    app = app_traffic(150, organisation=False)
    after = datetime.fromtimestamp(app[-1].ts_ms / 1000, timezone.utc) + timedelta(hours=1)
    assert worst(run(app + sweep(300, after, first=len(app)))) == SEVERITY["critical"]
