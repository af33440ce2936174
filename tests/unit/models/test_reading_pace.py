"""The reading pace (``ReadingPace``): requests sent before the key's previous answer could be
read are a script's, whatever the timing's regularity says; a follow-up sent so, carrying a
task of its own, is no conversation turn."""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time

import pytest

from distillguard.models import pipeline as p
from distillguard.models.events import RequestEvent, parse_event
from distillguard.models.pipeline import KeyPipeline, decode_state
from tests.unit.models.test_pipeline import run

T0_MS = 1_769_904_000_000


def _iso(ms: int) -> str:
    seconds, millis = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _event(i: int, ts_ms: float, rng: random.Random, output_tokens: int, latency_ms: int, **over) -> RequestEvent:
    """A plain free-form item: no extraction wording, new content every time."""
    doc = {"schema": "llm.request.v1", "event_id": f"e{i}", "ts": _iso(ts_ms), "api_key_id": "k1",
           "account_id": "acct", "model": "m", "latency_ms": latency_ms,
           "prompt": f"Describe how the {' and the '.join(_words(rng, 4))} relate to {_words(rng, 1)[0]}.",
           "usage": {"input_tokens": 25, "output_tokens": output_tokens}}
    doc.update(over)
    parsed = parse_event(json.dumps(doc).encode())
    assert isinstance(parsed, RequestEvent), parsed
    return parsed


def _words(rng: random.Random, n: int) -> list[str]:
    """``n`` made-up words: every item on a topic of its own."""
    return ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))
            for _ in range(n)]


def _jittered_gaps(rng: random.Random, n: int, median_s: float) -> list[float]:
    """Gaps of a person's spread (log-normal, sigma 1.1: timing regularity under 0.5)."""
    return [median_s * rng.lognormvariate(0.0, 1.1) for _ in range(n)]


def _sweep(n: int, median_gap_s: float, output_tokens: int, latency_ms: int, seed: int = 7):
    rng = random.Random(seed)
    ts, events = T0_MS, []
    for i, gap in enumerate(_jittered_gaps(rng, n, median_gap_s)):
        ts += gap * 1000
        events.append(_event(i, ts, rng, output_tokens, latency_ms))
    return events


def _run(events):
    state, alerts, _ = run(KeyPipeline(), events)
    return decode_state(state), alerts


def _reason(alert: dict, signal: str):
    return next((r["value"] for r in alert["reasons"] if r["signal"] == signal), None)


def test_a_harvest_with_jittered_timing_is_a_script_by_its_unread_answers():
    # 1,800-token answers (25 s in coming) collected every ~6 s, gaps spread like a person's
    st, alerts = _run(_sweep(150, 6.0, 1800, 25_000))
    assert p.regularity(st.gap_var) < 0.5  # the clock test alone does not see a script here
    assert st.unread_ew > 0.9
    assert alerts and max(a["severity"] for a in alerts) == "warning"  # (no wording: never critical)
    first = alerts[0]
    assert _reason(first, "harvest_without_wording") is not None
    assert _reason(first, "sent_before_answer_read_share") > 0.9
    assert _reason(first, "typical_answer_tokens") > 1000


def test_without_the_reading_pace_the_same_jittered_harvest_is_missed(monkeypatch):
    # Guard: the reading pace is what names it (the ramp out of reach: nothing is automated)
    monkeypatch.setattr(p, "_HARVEST_UNREAD", (2.0, 3.0))
    _, alerts = _run(_sweep(150, 6.0, 1800, 25_000))
    assert alerts == []


def test_a_person_reading_long_answers_between_requests_is_no_script():
    # the same one-shot items and answers, each sent minutes after the previous answer arrived
    st, alerts = _run(_sweep(150, 240.0, 1800, 25_000))
    assert st.unread_ew < 0.1
    assert alerts == []


def test_a_script_collecting_chat_length_answers_unread_is_not_a_harvest():
    # a developer's job: requests overlap, answers of a few hundred tokens (not harvest length)
    st, alerts = _run(_sweep(300, 2.0, 350, 8_000))
    assert st.unread_ew > 0.9
    assert alerts == []


def _opened_conversations(n: int, gap_s: float, output_tokens: int, latency_ms: int, seed: int = 3,
                          spread: float = 0.0):
    """A sweep inside conversations the key opened: turn 0, then items as turns 1-5, each
    resending the history (its claims hold), with a filler ("Thanks! Next one:") and a short
    item of its own (5 content words: under ``new_item``'s 6 for plain items). Gaps of
    ``gap_s`` +-20 % (a script's clock), or spread as a person's (``spread``: the log gap's
    standard deviation)."""
    rng = random.Random(seed)
    ts, events, context = T0_MS, [], 0
    for i in range(n):
        ts += gap_s * 1000 * (rng.lognormvariate(0.0, spread) if spread else rng.uniform(0.8, 1.2))
        turn = i % 6
        conversation = f"conv-{i // 6}"
        context = 0 if turn == 0 else context + 25 + output_tokens
        prompt = f"Thanks! Next one: {' '.join(_words(rng, 4))}"
        events.append(_event(i, ts, rng, output_tokens, latency_ms, prompt=prompt, conversation_id=conversation,
                             turn_index=turn, usage={"input_tokens": context + 25, "output_tokens": output_tokens}))
    return events


def test_follow_ups_sent_before_the_answer_was_read_do_not_count_as_conversation():
    st, alerts = _run(_opened_conversations(150, 6.0, 1800, 25_000))
    assert st.claims_n > 100 and st.claims_broken == 0  # every claim holds: ids, turns, history
    assert st.followup_ew < 0.05  # but none is a turn: each came unread, with a task of its own
    assert alerts and _reason(alerts[0], "harvest_without_wording") is not None


def test_the_same_follow_ups_at_a_readers_pace_count_as_conversation():
    # Guard: read first (3 minutes after each answer, at a person's uneven pace), the same
    # short items are turns
    st, alerts = _run(_opened_conversations(150, 180.0, 1800, 25_000, spread=1.2))
    assert p.regularity(st.gap_var) < 0.5 and st.unread_ew < 0.1
    assert st.claims_broken == 0 and st.followup_ew > 0.5
    assert alerts == []


def test_the_same_follow_ups_read_first_but_on_a_clock_do_not_count_as_conversation():
    # Read first (3 minutes +-20 % after each answer: none unread), but sent on a clock: no
    # person answers the previous turn on a clock; the turns are new items of a script
    st, alerts = _run(_opened_conversations(150, 180.0, 1800, 25_000))
    assert p.regularity(st.gap_var) > 0.8 and st.unread_ew < 0.1
    assert st.claims_broken == 0 and st.followup_ew < 0.05
    assert alerts and _reason(alerts[0], "harvest_without_wording") is not None


@pytest.mark.parametrize("latency_ms", [0, None])
def test_unknown_latency_reads_as_none(latency_ms):
    # a gateway that does not report latency: only the answer's reading time counts
    events = _sweep(60, 6.0, 1800, 0)
    if latency_ms is None:
        events = [dataclasses.replace(e, latency_ms=None) for e in events]
    st, _ = _run(events)
    assert st.reply_ready == pytest.approx(events[-1].ts_ms + 1800 * 5.0)



def _state(unread: float, gap_var: float, answer_tokens: float):
    st = p.KeyState()
    st.unread_ew, st.gap_var, st.answer_n, st.answer_log = unread, gap_var, 50, math.log(answer_tokens)
    return st


def _automated(pipeline: KeyPipeline, st) -> float:
    return pipeline._automated(st, pipeline._long_answers(st))


def test_unread_answers_count_as_automation_as_far_as_they_are_long():
    pipeline = KeyPipeline()
    irregular = 1.2  # regularity 0.48: under the clock's ramp
    assert _automated(pipeline, _state(1.0, irregular, 1600)) == 1.0  # long answers, unread: a script
    assert _automated(pipeline, _state(0.05, irregular, 1600)) == 0.0  # read, each of them: a person
    # chat-length answers take a reader a second or two: unread, they say no more than the clock
    # (a developer's job of terse prompts, stress-content-cohort-b: named at info without the bound)
    assert _automated(pipeline, _state(1.0, irregular, 330)) == 0.0
    assert _automated(pipeline, _state(1.0, irregular, 566)) == pytest.approx(0.5, abs=0.01)
    assert _automated(pipeline, _state(1.0, 0.1, 330)) == 1.0  # a clock is a clock
