"""The key detector against an attacker who reads it: conversation claims are checked, and a
harvest needs no extraction wording (issue 18, items 3 and 5)."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from distillguard.models.events import RequestEvent, parse_event
from distillguard.models.pipeline import KeyPipeline

T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)
STYLED = "Think step by step and show all your reasoning: {q}"
# words for free-form questions with no extraction wording: each prompt new content
WORDS = ("river bridge orbit enzyme tariff sonnet glacier circuit ledger violin harbor pigment molecule "
         "senate canyon algorithm festival vaccine compass mortgage volcano grammar satellite protein "
         "museum drought theorem lantern election fungus crystal budget nebula reef dialect turbine").split()


def question(rng: random.Random) -> str:
    a, b, c = rng.sample(WORDS, 3)
    return rng.choice(["How does the {a} relate to the {b} and the {c}?", "Why would a {a} change a {b} near a {c}?",
                       "What happens to the {a} when the {b} meets the {c}?"]).format(a=a, b=b, c=c)


def event(i: int, at: datetime, prompt: str, out: int, sent: int = 60, key: str = "k1", **over) -> RequestEvent:
    doc = {"schema": "llm.request.v1", "event_id": f"{key}-{i}", "ts": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
           "api_key_id": key, "account_id": "acct", "model": "m", "prompt": prompt,
           "usage": {"input_tokens": sent, "output_tokens": out}}
    doc.update(over)
    parsed = parse_event(json.dumps(doc).encode())
    assert isinstance(parsed, RequestEvent), parsed
    return parsed


def run(events) -> list[dict]:
    pipeline, state, alerts = KeyPipeline(), None, []
    for offset, e in enumerate(events):
        result = pipeline.step(state, e, offset)
        state = result.state
        if result.alert:
            alerts.append(result.alert)
    return alerts


def script(n: int, gap_s: float, jitter: float, seed: int = 1):
    """Event times of a script: a request every ``gap_s`` seconds, give or take ``jitter``."""
    rng, at = random.Random(seed), T0
    for _ in range(n):
        at += timedelta(seconds=gap_s * rng.uniform(1 - jitter, 1 + jitter))
        yield at


def reasons(alert: dict) -> dict:
    return {r["signal"]: r["value"] for r in alert["reasons"]}


# -- item 3: conversation claims ---------------------------------------------------------

def fabricated_sweep(n: int = 400, seed: int = 2) -> list[RequestEvent]:
    """A styled sweep that claims every request is a later turn of one of three conversations
    it never opened, with no history resent."""
    rng = random.Random(seed)
    return [event(i, at, "Thanks! Next one: " + STYLED.format(q=question(rng)), 900, turn_index=1 + i,
                  conversation_id=f"c{i % 3}") for i, at in enumerate(script(n, 20, 0.5, seed))]


def test_a_sweep_claiming_conversation_turns_is_not_discounted_as_conversation():
    alerts = run(fabricated_sweep())
    assert alerts, "fabricated follow-up claims discounted the sweep as conversation"
    why = reasons(alerts[-1])
    assert why["conversation_claims_inconsistent"] >= 0.9 * alerts[-1]["events_seen"] >= 18
    assert "unopened" in why["conversation_claims_broken_by"]


FOLLOW_UPS = ("Why? Show your steps.", "Explain that step by step.", "And for b)? Steps please.",
              "Walk me through the second step.")


def test_a_person_asking_for_steps_in_follow_ups_still_counts_as_conversation():
    # a person who opens each conversation, answers the previous turn (history resent) and
    # asks for the steps of what the model just said, at human pace
    rng, at, events, context = random.Random(4), T0, [], 0
    for i in range(400):
        t = i % 4
        at += timedelta(seconds=rng.expovariate(1 / 240) if t else rng.expovariate(1 / 7200))
        context = 0 if t == 0 else context
        sent = context + 60
        prompt = question(rng) if t == 0 else rng.choice(FOLLOW_UPS)
        events.append(event(i, at, prompt, 700, sent, turn_index=t, conversation_id=f"c{i // 4}"))
        context = sent + 700
    assert run(events) == []


def opened_sweep(n: int = 400, seed: int = 3, gap_s: float = 60.0, styled: bool = True,
                 out: int = 900) -> list[RequestEvent]:
    """A sweep whose claims hold: it opens every conversation itself, resends the whole history
    each turn, and sends the next item as turn 1, 2, 3 ("Thanks! Next one: ..."), at a person's
    pace by default (an attacker who read conversation_claims.py). ``styled``: each item
    wrapped in a reasoning instruction; else a plain item of its own."""
    rng, events, context = random.Random(seed), [], 0
    for i, at in enumerate(script(n, gap_s, 0.6, seed)):
        t = i % 10
        context = 0 if t == 0 else context
        sent = context + 80
        item = STYLED.format(q=question(rng)) if styled else \
            "Write about how the {} and the {} shape the {}, the {} and the {} today.".format(*rng.sample(WORDS, 5))
        prompt = ("Thanks! Next one: " if t else "") + item
        events.append(event(i, at, prompt, int(out * rng.uniform(0.8, 1.25)), sent, turn_index=t,
                            conversation_id=f"c{i // 10}"))
        context = sent + out
    return events


def test_new_items_sent_as_turns_of_opened_conversations_are_not_conversation():
    # every claim holds (opened, in order, history resent), yet each turn is a new wrapped item:
    # a person answering the previous turn does not send one (without the new-item rule the
    # key is discounted as conversation and never alerts)
    alerts = run(opened_sweep())
    assert alerts and alerts[0]["events_seen"] <= 60 and alerts[-1]["severity"] == "critical"
    assert reasons(alerts[-1]).get("conversation_claims_inconsistent", 0) == 0  # no claim is broken
    assert reasons(alerts[-1])["follow_ups_a_persons_share"] < 0.15  # what on-call reads instead
    # the same prompts in the same opened conversations, each answered by a person's short
    # follow-up instead of the next item, are conversation (the test above)


def test_plain_items_sent_as_turns_and_answered_at_length_are_a_harvest():
    # no extraction wording: each turn a plain item of its own, answered at a reasoning model's
    # length, on a script's clock (without the rule the turns count as conversation: no alert)
    alerts = run(opened_sweep(styled=False, out=2000, gap_s=8.0))
    assert alerts and alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert {a["severity"] for a in alerts} <= {"info", "warning"}  # no wording: never a page on its own
    # answered at an ordinary length, the same turns stay conversation (a person's questions)
    assert run(opened_sweep(styled=False, out=350, gap_s=8.0)) == []


# -- item 5: harvest without wording -----------------------------------------------------

def plain_harvest(n: int, out: int, gap_s: float = 6.0, jitter: float = 0.3, seed: int = 5, sent: int = 60):
    rng = random.Random(seed)
    return [event(i, at, question(rng), int(out * rng.lognormvariate(0, 0.5)), sent)
            for i, at in enumerate(script(n, gap_s, jitter, seed))]


def test_a_plain_harvest_of_long_answers_at_machine_rate_alerts_within_100_events():
    alerts = run(plain_harvest(300, 1500))
    assert alerts and alerts[0]["events_seen"] <= 100
    first = reasons(alerts[0])
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert first["typical_answer_tokens"] >= 1000
    # no wording to show a human: info or warning, never a page at critical on its own
    assert {a["severity"] for a in alerts} <= {"info", "warning"}


def test_a_script_with_ordinary_answers_is_not_a_harvest():
    # a developer's SDK script over varied questions, answers of a few hundred tokens
    assert run(plain_harvest(600, 250)) == []


def test_a_sweep_of_bare_items_for_chat_length_answers_alerts_within_100_events():
    # free-form items sent bare (a dozen input tokens: one instruction, in any language) for
    # answers of ~500 tokens, under the long answers' bar: answer length alone is no harvest
    # here, a run of answers many times the prompt is
    alerts = run(plain_harvest(300, 500, sent=12))
    assert alerts and alerts[0]["events_seen"] <= 100
    first = reasons(alerts[0])
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert first["typical_prompt_tokens"] == 12 and first["typical_answer_tokens"] < 800
    # no run of long answers to date its start by: its past is not told as "turned"
    assert "key_history" not in first
    assert {a["severity"] for a in alerts} <= {"info", "warning"}


def test_a_script_sending_context_with_chat_length_answers_is_not_a_harvest():
    # the same pace and answers, but each request carries its context (code, a document): x10
    assert run(plain_harvest(600, 500, sent=50)) == []


def test_a_script_relaying_short_chat_messages_for_chat_replies_is_not_a_harvest():
    # as terse and as fast, but the replies are a chat's (~280 tokens), not an item's answer
    assert run(plain_harvest(600, 280, sent=13)) == []


def test_a_script_on_a_strict_clock_collecting_chat_length_answers_is_a_harvest_at_info():
    """New one-shot items on a clock with little jitter (a fixed sleep: regularity 0.9+),
    answered at chat length (~330 tokens, under the long answers' bar, x6 the prompt): a
    dataset collected, named at info once a hundred-odd events are in. The same script with
    +-30 % jitter (regularity ~0.85) is still a developer's script (test above)."""
    alerts = run(plain_harvest(400, 330, jitter=0.05, sent=50))
    assert alerts and 100 <= alerts[0]["events_seen"] <= 160
    first = reasons(alerts[0])
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert first["typical_answer_tokens"] < 400 and first["timing_regularity"] >= 0.88
    assert {a["severity"] for a in alerts} == {"info"}
    # guard: the jittered script of the same answers and prompts
    assert run(plain_harvest(400, 330, jitter=0.3, sent=50)) == []


def test_a_script_on_a_strict_clock_with_short_answers_or_one_frame_is_not_a_harvest():
    assert run(plain_harvest(400, 120, jitter=0.05, sent=50)) == [], "short answers: a classifier's"
    rng = random.Random(4)
    framed = [event(i, at, "Summarise this support ticket in two sentences: order " + str(rng.randint(1, 99)),
                    int(330 * rng.lognormvariate(0, 0.5)), 50) for i, at in enumerate(script(400, 6.0, 0.05))]
    assert run(framed) == [], "one fixed frame: a templated job, no breadth"


def paced(n: int, out: int, seed: int = 6, sent: int = 60, **over) -> list[RequestEvent]:
    """Requests at a person's irregular pace (about one every 5 minutes), new questions."""
    rng, at, events = random.Random(seed), T0, []
    for i in range(n):
        at += timedelta(seconds=rng.expovariate(1 / 300))
        events.append(event(i, at, question(rng), int(out * rng.lognormvariate(0, 0.3)), sent, **over))
    return events


def test_people_reading_long_answers_are_not_a_harvest():
    # the same long answers, at a person's irregular pace: no clock, and no run a reader does
    # not sustain (99 answers)
    assert run(paced(99, 1500)) == []


def test_a_sustained_run_of_long_answers_at_a_persons_pace_is_a_harvest_at_info():
    # hundreds of worked answers to one-line questions, none followed up: what no reader's
    # use sustains, whatever the pace. No clock to prove a script: info, never a page
    alerts = run(paced(400, 1500))
    assert alerts and 100 <= alerts[0]["events_seen"] <= 200
    assert {a["severity"] for a in alerts} == {"info"}
    first = reasons(alerts[0])
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert first["long_answer_run"] >= 100 and first["timing_regularity"] < 0.5


def test_a_persons_long_answers_to_long_material_are_not_a_harvest():
    # the same run, each request pasting material about the answer's size (translation,
    # summaries, rewriting): the answers are not many times the question
    assert run(paced(400, 1500, sent=900)) == []


def test_a_persons_long_answers_in_real_conversations_are_not_a_harvest():
    # the same run, as follow-ups of conversations the key opened, history resent
    rng, at, events = random.Random(13), T0, []
    for i in range(400):
        at += timedelta(seconds=rng.expovariate(1 / 300))
        turn = i % 4
        events.append(event(i, at, question(rng), 1500, 60 + 400 * turn, conversation_id=f"c{i // 4}",
                            turn_index=turn))
    assert run(events) == []


def test_an_app_wrapping_one_frame_with_long_answers_is_not_a_harvest():
    # a templated product (one fixed frame, new material): long outputs, machine rate
    rng = random.Random(7)
    events = [event(i, at, "Translate the following customer message into French, keeping the tone: "
                    + question(rng), 1500) for i, at in enumerate(script(600, 6, 0.3, 7))]
    assert run(events) == []


def resampling(n: int, out: int, items: int = 3, gap_s: float = 6.0, seed: int = 9):
    """A script resending the same few prompts for fresh answers (several samples per item)."""
    rng = random.Random(seed)
    prompts = [question(rng) for _ in range(items)]
    return [event(i, at, prompts[i % items], int(out * rng.lognormvariate(0, 0.5)))
            for i, at in enumerate(script(n, gap_s, 0.3, seed))]


def test_resampling_the_same_prompts_for_long_answers_is_a_harvest():
    # no breadth at all (three prompts, over and over), so the breadth condition alone missed it
    alerts = run(resampling(300, 3000))
    assert alerts and alerts[0]["events_seen"] <= 100
    first = reasons(alerts[0])
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert first["harvest_content"] == "items_resampled"
    assert {a["severity"] for a in alerts} <= {"info", "warning"}


def test_a_plain_harvest_names_new_items_as_its_content():
    assert reasons(run(plain_harvest(300, 1500))[0])["harvest_content"] == "new_items"


def test_a_job_resending_one_prompt_for_short_answers_is_not_a_harvest():
    # a health check or CI job: the same prompt on a clock, answers of a few dozen tokens
    assert run(resampling(600, 40, items=1)) == []


def test_people_resending_the_same_prompts_at_their_pace_are_not_a_harvest():
    rng, at, events = random.Random(10), T0, []
    prompts = [question(rng) for _ in range(3)]
    for i in range(400):
        at += timedelta(seconds=rng.expovariate(1 / 300))
        events.append(event(i, at, prompts[i % 3], 3000))
    assert run(events) == []


def test_fabricated_claims_stand_in_for_long_answers():
    # a plain sweep with ordinary answer lengths, every request dressed up as a follow-up of a
    # conversation it never opened: the disguise is itself evidence
    rng = random.Random(8)
    events = [event(i, at, question(rng), 250, turn_index=1 + rng.randint(0, 9), conversation_id=f"x{i}")
              for i, at in enumerate(script(300, 6, 0.3, 8))]
    alerts = run(events)
    assert alerts and reasons(alerts[0])["conversation_claims_inconsistent"] > 0
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"


# -- the key's past, as a harvest alert tells it ---------------------------------------------

def test_a_harvest_from_the_first_requests_reads_from_first_events():
    first = reasons(run(plain_harvest(300, 1500))[0])
    assert first["key_history"] == "from_first_events" and first["events_before_extraction"] < 5


def test_a_key_that_turns_to_a_harvest_after_ordinary_use_reads_turned():
    # 120 requests of a person (short answers, their own pace), then the key sweeps
    rng, at, events = random.Random(11), T0, []
    for i in range(120):
        at += timedelta(seconds=rng.expovariate(1 / 600))
        events.append(event(i, at, question(rng), 200))
    for j, when in enumerate(script(300, 6, 0.3, 12)):
        events.append(event(120 + j, at + (when - T0), question(rng), int(1500 * rng.lognormvariate(0, 0.5))))
    alerts = run(events)
    assert alerts and alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    first = reasons(alerts[0])
    assert first["key_history"] == "turned" and 115 <= first["events_before_extraction"] <= 130


def test_a_key_that_turns_to_a_harvest_at_a_persons_pace_reads_turned():
    # 120 requests of a person, then the same person's pace with long worked answers
    rng, at, events = random.Random(14), T0, []
    for i in range(420):
        at += timedelta(seconds=rng.expovariate(1 / 600 if i < 120 else 1 / 300))
        out = 200 if i < 120 else int(1500 * rng.lognormvariate(0, 0.3))
        events.append(event(i, at, question(rng), out))
    alerts = run(events)
    assert alerts and {a["severity"] for a in alerts} == {"info"}
    first = reasons(alerts[0])
    assert first["key_history"] == "turned" and 115 <= first["events_before_extraction"] <= 130


def test_plain_items_sent_as_turns_at_a_persons_pace_are_a_harvest_of_their_own_prompts():
    # At a person's pace no clock proves a script; what is left is the run of long answers to
    # short new items. Each turn resends the conversation's history, so its input tokens are
    # the history's: the typical prompt is the item alone (ConversationClaims.prompt_tokens),
    # else the answers are not many times the prompts and the key is never named.
    events = opened_sweep(n=500, styled=False, out=2000, gap_s=60.0)
    alerts = run(events)
    assert alerts and alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert reasons(alerts[0])["typical_prompt_tokens"] <= 100  # the items: 80 tokens each, the history up to 20k
    assert {a["severity"] for a in alerts} == {"info"}


def read_sweep(n: int, seed: int = 7, lo: int = 300, hi: int = 2500) -> list[RequestEvent]:
    """A sweep in conversations it opens, resending the history, that waits for each answer to
    be read (90-400 s between requests: no clock, nothing sent unread) and asks for answers of
    ``lo``-``hi`` tokens (log-uniform): many of its plain items come back at 300-500 tokens,
    an ordinary answer's length (fabricated-conversations-e)."""
    rng, events, context, at = random.Random(seed), [], 0, T0
    for i in range(n):
        at += timedelta(seconds=rng.uniform(90, 400))
        t = i % 8
        context = 0 if t == 0 else context
        sent = context + 80
        out = int(lo * (hi / lo) ** rng.random())
        item = "Write about how the {} and the {} shape the {}, the {} and the {} today.".format(*rng.sample(WORDS, 5))
        events.append(event(i, at, ("Thanks! Next one: " if t else "") + item, out, sent, turn_index=t,
                            conversation_id=f"c{i // 8}"))
        context = sent + out
    return events


def test_plain_items_in_opened_conversations_are_no_turns_on_a_key_of_no_person():
    # Its follow-ups are never a person's short ones: past ~22 of them (``person`` under
    # rare_person_share) a plain item answered at 200+ tokens is an item, not a turn. With the
    # 500-token bar alone, a third of its requests counted as conversation and it was never named.
    alerts = run(read_sweep(400))
    assert alerts and alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert alerts[0]["events_seen"] <= 100
    assert reasons(alerts[0])["follow_ups_a_persons_share"] < 0.05
    assert {a["severity"] for a in alerts} <= {"info", "warning"}  # no wording: never a page on its own


def test_a_person_whose_follow_ups_are_sometimes_short_keeps_their_turns():
    # The same conversations with one short follow-up in four ("why?") keep ``person`` over
    # rare_person_share: the turns answered at ordinary length stay conversation, no alert.
    events = read_sweep(400)
    rng = random.Random(8)
    for i, e in enumerate(events):
        if e.turn_index and rng.random() < 0.25:
            events[i] = event(i, datetime.fromtimestamp(e.ts_ms / 1000, timezone.utc), "Why is that?",
                              e.output_tokens, e.input_tokens, turn_index=e.turn_index,
                              conversation_id=e.conversation_id)
    assert run(events) == []
