"""The per-key step: compact state, dedup, incidents without storms, overrides, determinism."""
from __future__ import annotations

import json
import math
import pickle
import struct

import pytest

from distillguard.devtools.demo_traffic import demo_events
from distillguard.models.events import RequestEvent, parse_event
from distillguard.models.pipeline import ROW_COLUMNS, STATE_BYTES, DetectorConfig, KeyPipeline
from distillguard.models.detectors.conversation_claims import PERSON_PRIOR

CONTENT = ["Explain the key idea behind {i} in thermodynamics. Think step by step and show all your reasoning.",
           "Answer with the letter of the correct option only: which of these is a prime, case {i}? (A) 4 (B) 9",
           "Grade the following answer on a 1-10 rubric for correctness, explaining each score: essay {i}.",
           "Solve this number theory problem {i} and justify each step of your reasoning before the final answer."]


def ev(i: int, key: str = "k1", prompt: str | None = None, **over) -> RequestEvent:
    doc = {"schema": "llm.request.v1", "event_id": f"{key}-e{i}", "ts_ms": None,
           "ts": f"2026-02-01T{(i // 60) % 24:02d}:{i % 60:02d}:00Z", "api_key_id": key, "account_id": "acct",
           "model": "m", "prompt": prompt or CONTENT[i % len(CONTENT)].format(i=i)}
    doc.pop("ts_ms")
    doc.update(over)
    parsed = parse_event(json.dumps(doc).encode())
    assert isinstance(parsed, RequestEvent), parsed
    return parsed


def run(pipeline: KeyPipeline, events, offsets=True):
    state, alerts, results = None, [], []
    for offset, event in enumerate(events):
        result = pipeline.step(state, event, offset if offsets else None)
        results.append(result)
        state = result.state
        if result.alert:
            alerts.append(result.alert)
    return state, alerts, results


def test_state_is_small_fixed_size_bytes():
    state, _, results = run(KeyPipeline(), [ev(i) for i in range(300)])
    assert isinstance(state, bytes) and len(state) == STATE_BYTES <= 2048
    assert KeyPipeline().describe_state(state)["events"] == 300


def test_rows_have_the_contract_columns_and_no_text():
    _, _, results = run(KeyPipeline(), [ev(i) for i in range(3)])
    for result in results:
        assert tuple(result.row) == ROW_COLUMNS
        assert not any(isinstance(v, str) and "step by step" in v for v in result.row.values())


def test_replayed_offsets_and_resent_event_ids_are_duplicates():
    pipeline = KeyPipeline()
    state, _, _ = run(pipeline, [ev(i) for i in range(10)])
    again = pipeline.step(state, ev(3), offset=3)
    assert again.duplicate and again.state == state and again.row is None
    resent = pipeline.step(state, ev(9), offset=10)  # same event id at a new offset (producer retry)
    assert resent.duplicate
    fresh = pipeline.step(state, ev(10), offset=10)
    assert not fresh.duplicate and pipeline.describe_state(fresh.state)["events"] == 11


def test_sweep_opens_one_incident_without_a_storm():
    _, alerts, _ = run(KeyPipeline(), [ev(i) for i in range(600)])
    assert alerts, "a sustained extraction-style sweep must alert"
    assert {a["alert_id"] for a in alerts} == {"key:k1:1"}
    ranks = [("info", "warning", "critical").index(a["severity"]) for a in alerts]
    assert ranks == sorted(set(ranks)), "re-sent only to escalate"
    first = alerts[0]
    assert first["events_seen"] >= KeyPipeline().config.critical_min_events
    assert first["schema"] == "distill.alert.v1" and first["entity_type"] == "key"
    assert first["reasons"][0]["signal"] and "value" in first["reasons"][0]


def test_conversational_user_does_not_alert():
    chat = ["How do I roast a chicken?", "And what about the gravy?", "Can I do it without an oven thermometer?",
            "Thanks, what side dish would go well?"]
    events = [ev(i, prompt=chat[i % 4], turn_index=i % 4, conversation_id=f"c{i // 4}") for i in range(400)]
    assert run(KeyPipeline(), events)[1] == []


def test_incident_closes_after_quiet_then_reopens_as_new_incident():
    config = DetectorConfig(close_after=50)
    pipeline = KeyPipeline(config)
    quiet = [ev(i, prompt=f"what's a good name for my cat number {i}?", turn_index=1) for i in range(300, 700)]
    _, alerts, _ = run(pipeline, [ev(i) for i in range(200)] + quiet + [ev(i) for i in range(700, 1400)])
    assert {a["alert_id"] for a in alerts} == {"key:k1:1", "key:k1:2"}


def test_allowlist_and_threshold_overrides():
    sweep = [ev(i) for i in range(400)]
    assert run(KeyPipeline(DetectorConfig(allow_keys=frozenset({"k1"}))), sweep)[1] == []
    assert run(KeyPipeline(DetectorConfig(allow_accounts=frozenset({"acct"}))), sweep)[1] == []
    assert run(KeyPipeline(DetectorConfig(key_threshold_scale={"k1": 5.0})), sweep)[1] == []
    late = run(KeyPipeline(DetectorConfig(min_events=300, critical_min_events=300)), sweep)[1]
    assert late and late[0]["events_seen"] >= 300


def test_a_key_at_the_critical_level_opens_from_critical_min_events_and_no_other_level_before_min_events():
    """A hydra's styled head sends 10-40 requests: a score at critical over 20 of them opens the
    incident, at critical, on a young account or one of unknown age; a score under critical, or
    a mature account (whose real services need their first 50 requests to show their evidence),
    waits for ``min_events`` as before. Guard: with ``critical_min_events`` at ``min_events`` the
    same head raises nothing."""
    head = [ev(i) for i in range(40)]
    alerts = run(KeyPipeline(), head)[1]
    assert len(alerts) == 1 and alerts[0]["severity"] == "warning", "a head pages by its campaign's cluster"
    assert DetectorConfig().critical_min_events <= alerts[0]["events_seen"] < DetectorConfig().min_events
    assert alerts[0]["reasons"][0] == {"signal": "opened_before_min_events", "value": alerts[0]["events_seen"],
                                       "baseline": DetectorConfig().min_events, "weight": None}
    # a head that goes on is paged at min_events, as any key
    going_on = run(KeyPipeline(), [ev(i) for i in range(60)])[1]
    assert [a["severity"] for a in going_on] == ["warning", "critical"]
    assert going_on[1]["events_seen"] == DetectorConfig().min_events
    young = [ev(i, account={"created_at": "2026-01-29T00:00:00Z"}) for i in range(40)]
    assert run(KeyPipeline(), young)[1][0]["events_seen"] < DetectorConfig().min_events
    mature = [ev(i, account={"created_at": "2025-01-01T00:00:00Z"}) for i in range(60)]
    assert run(KeyPipeline(), mature)[1][0]["events_seen"] >= DetectorConfig().min_events
    assert run(KeyPipeline(DetectorConfig(critical_min_events=50)), head)[1] == []
    # a lower bar than the critical level's: nothing before min_events, whatever critical_min_events says
    warning_only = KeyPipeline(DetectorConfig(thresholds=(0.5, 0.65, 1.01)))
    longer = run(warning_only, [ev(i) for i in range(200)])[1]
    assert longer and longer[0]["events_seen"] >= DetectorConfig().min_events
    assert longer[0]["severity"] != "critical"
    # never later than min_events: an operator's lower min_events wins (and pages from it)
    eager = run(KeyPipeline(DetectorConfig(min_events=10)), head)[1][0]
    assert eager["events_seen"] < 20 and eager["severity"] == "critical"


def test_deterministic_and_pickle_safe():
    events = demo_events(seed=3, users=10, campaign_events=200)
    parsed = [parse_event(json.dumps(e).encode()) for e in events]
    pipeline = KeyPipeline()
    assert pickle.loads(pickle.dumps(pipeline)).config == pipeline.config

    def alerts_of():
        states, out = {}, []
        for event in parsed:
            result = pipeline.step(states.get(event.api_key_id), event)
            states[event.api_key_id] = result.state
            out += [result.alert] if result.alert else []
        return out, states

    first, states_a = alerts_of()
    second, states_b = alerts_of()
    assert first == second and states_a == states_b


@pytest.mark.parametrize("data", [b"", b"\x09garbage", b"\x01" + b"\x00" * 10])
def test_unknown_state_layout_starts_fresh(data):
    result = KeyPipeline().step(data or None, ev(0), offset=0)
    assert KeyPipeline().describe_state(result.state)["events"] == 1


def _usage(tokens: int) -> dict:
    return {"usage": {"input_tokens": 80, "output_tokens": tokens}}


def test_short_answers_harvest_little_so_a_final_answer_eval_does_not_page():
    # The same reasoning-style prompts: answered in a few tokens they are an evaluation run
    # (nothing worth distilling), answered at length they are a harvest of reasoning traces.
    _, eval_alerts, _ = run(KeyPipeline(), [ev(i, **_usage(30)) for i in range(400)])
    _, harvest_alerts, _ = run(KeyPipeline(), [ev(i, **_usage(900)) for i in range(400)])
    assert eval_alerts == []
    assert harvest_alerts and any(r["signal"] == "output_yield" for r in harvest_alerts[0]["reasons"])


def test_unreported_usage_is_neutral():
    _, alerts, _ = run(KeyPipeline(), [ev(i) for i in range(400)])  # no usage field at all
    assert alerts


def test_an_out_of_order_event_does_not_wind_the_key_clock_back():
    from distillguard.models.pipeline import decode_state

    state, _, _ = run(KeyPipeline(), [ev(i) for i in range(10)])
    newest = decode_state(state).last_ts
    older = KeyPipeline().step(state, ev(2, event_id="late-copy")).state
    assert decode_state(older).last_ts == newest


PLAIN = ["Write a short story about a lighthouse keeper, number {i}.", "List the main causes of inflation in case {i}.",
         "Translate 'good morning' into language number {i}.", "Summarize the plot of chapter {i} of a mystery novel.",
         "What are some tips for growing tomatoes on balcony {i}?"]


def _diluted_campaign(n: int, every: int, tokens: int) -> list[RequestEvent]:
    """One extraction-style prompt in ``every``, the rest ordinary instructions, all answered at
    ``tokens`` output tokens: a low-and-slow campaign hiding in camouflage."""
    return [ev(i, **_usage(tokens)) if i % every == 0 else
            ev(i, prompt=PLAIN[i % len(PLAIN)].format(i=i), **_usage(tokens)) for i in range(n)]


def test_a_diluted_campaign_pages_on_sustained_evidence_not_on_its_share():
    # One in three prompts is extraction-style: the share (~0.33) scores under every level,
    # but the evidence that the key's rate is a campaign's keeps growing.
    _, share_only, _ = run(KeyPipeline(DetectorConfig(evidence_threshold=1e9)), _diluted_campaign(600, 3, 700))
    state, alerts, _ = run(KeyPipeline(), _diluted_campaign(600, 3, 700))
    assert share_only == []
    assert alerts and alerts[0]["reasons"][0]["signal"] == "extraction_rate_evidence"
    assert alerts[0]["reasons"][0]["value"] >= alerts[0]["reasons"][0]["baseline"] == 15.0
    assert alerts[-1]["severity"] == "critical"


def test_evidence_ignores_a_population_rate_of_style_and_short_or_conversational_answers():
    pipeline = KeyPipeline()
    # one in twenty: a user who sometimes asks for steps, as the population does
    assert run(pipeline, _diluted_campaign(1500, 20, 700))[1] == []
    # every prompt styled, answered in a word: an evaluation, nothing harvested
    assert run(pipeline, _diluted_campaign(1500, 1, 40))[1] == []
    # a tutoring conversation: follow-up turns asking for the steps of the last answer are
    # conversation, not a sweep (the key opened each conversation, and every turn resends the
    # history before it; a new wrapped item as a turn is not: test_claims_and_harvest.py)
    chat = [ev(i, prompt="Why? Show your steps.", turn_index=i % 4, conversation_id=f"c{i // 4}",
               usage={"input_tokens": 80 + 780 * (i % 4), "output_tokens": 700}) if i % 4 else
            ev(i, prompt=PLAIN[i % 5].format(i=i), conversation_id=f"c{i // 4}", **_usage(700)) for i in range(1500)]
    state = run(pipeline, chat)[0]
    from distillguard.models.pipeline import decode_state
    assert decode_state(state).evidence < 15.0


def test_evidence_decays_so_the_incident_can_close():
    config = DetectorConfig(close_after=50)
    events = _diluted_campaign(400, 2, 700) + [ev(i, prompt=PLAIN[i % 5].format(i=i), turn_index=1, **_usage(700))
                                               for i in range(400, 900)]
    from distillguard.models.pipeline import decode_state
    state, alerts, _ = run(KeyPipeline(config), events)
    assert alerts and not KeyPipeline(config).describe_state(state)["alerting"]
    assert decode_state(state).evidence == 0.0


@pytest.mark.parametrize("version", [3, 4, 5])
def test_an_older_state_is_read_with_its_history_after_an_upgrade(version):
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [ev(i) for i in range(120)])
    current = p._STRUCT.unpack(state)
    layout, count = p._OLD_LAYOUTS[version]
    # the same key, written by an older worker: its layout ends its scalars earlier and has no
    # conversation rings (the products' and the claims')
    tail = 2 * p._CONV + p._CLAIM_VALUES + p._SIGNAL_VALUES + 2 * p._RERUN + p._BATCH_TABLE + p._MATERIAL
    old = layout.pack(version, *current[1:count + 1], *current[p._NS + 1:-tail])
    assert len(old) == p.STATE_BYTES - 8 * (p._NS - count) - 8 * p._CONV - struct.calcsize(f"<{p._CLAIM_ARRAYS}") \
        - 2 * p._SIGNAL_VALUES - 8 * p._RERUN - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded = p.decode_state(old)
    assert upgraded.n == 120 and upgraded.score == p.decode_state(state).score
    assert upgraded.hist == p.decode_state(state).hist
    assert upgraded.app_ew == upgraded.convs == 0.0 and upgraded.app_conv_ids == [0] * p._CONV
    if version < 5:
        assert upgraded.run_ts == upgraded.run_n == 0.0
    else:
        assert upgraded.run_ts == p.decode_state(state).run_ts
    assert upgraded.claims_n == upgraded.answer_n == 0.0 and upgraded.conv_ids == [0] * p._CONVERSATIONS
    if version == 3:
        assert upgraded.evidence == 0.0
    assert KeyPipeline().step(old, ev(500)).state[0] == p.STATE_VERSION


def test_a_v6_state_keeps_its_conversation_rings_and_counts_signals_from_the_upgrade():
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [ev(i) for i in range(120)])
    current = p._STRUCT.unpack(state)
    layout, _ = p._OLD_LAYOUTS[6]
    count = p._V6_SCALARS  # written before the harvest run's scalars and the signal counts
    tail = p._SIGNAL_VALUES + 2 * p._RERUN + p._BATCH_TABLE + p._MATERIAL
    old = layout.pack(6, *current[1:count + 1], *current[p._NS + 1:-tail])
    assert len(old) == p.STATE_BYTES - 2 * p._SIGNAL_VALUES - 8 * (p._NS - count) - 8 * p._RERUN \
        - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded, was = p.decode_state(old), p.decode_state(state)
    assert upgraded.n == 120 and upgraded.conv_marks == was.conv_marks and upgraded.claim_kinds == was.claim_kinds
    assert upgraded.signals == [0] * p._SIGNAL_VALUES and was.signals[0] >= 60  # ev(): reasoning in half
    assert KeyPipeline().step(old, ev(500)).state[0] == p.STATE_VERSION


def test_a_v7_state_keeps_its_history_and_learns_its_typical_prompt_from_the_upgrade():
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [ev(i, usage={"input_tokens": 30, "output_tokens": 500}) for i in range(120)])
    current = p._STRUCT.unpack(state)
    layout, count = p._OLD_LAYOUTS[7]
    # written before the typical prompt length (person share, re-runs, reading, agent, batches, app hold)
    assert count == p._NS - 15
    old = layout.pack(7, *current[1:count + 1], *current[p._NS + 1:-2 * p._RERUN - p._BATCH_TABLE - p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 120 - 8 * p._RERUN - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded, was = p.decode_state(old), p.decode_state(state)
    assert upgraded.n == 120 and upgraded.signals == was.signals and upgraded.conv_ids == was.conv_ids
    assert upgraded.prompt_log == 0.0 and round(was.prompt_log, 6) == round(math.log(31), 6)
    assert upgraded.person_ew == PERSON_PRIOR  # a new key's prior, not 0 (see models/pipeline.py)
    after = p.decode_state(KeyPipeline().step(old, ev(500, usage={"input_tokens": 30, "output_tokens": 500})).state)
    assert after.prompt_log == math.log(31)  # seeded by the first prompt it sees


def test_a_v8_state_keeps_its_history_and_reads_the_person_share_as_a_new_keys():
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [ev(i, usage={"input_tokens": 30, "output_tokens": 500}) for i in range(120)])
    current = p._STRUCT.unpack(state)
    layout, count = p._OLD_LAYOUTS[8]
    # written before the share of a person's follow-ups (re-runs, reading, agent, batches, app hold)
    assert count == p._NS - 14
    old = layout.pack(8, *current[1:count + 1], *current[p._NS + 1:-2 * p._RERUN - p._BATCH_TABLE - p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 112 - 8 * p._RERUN - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded, was = p.decode_state(old), p.decode_state(state)
    assert upgraded.n == 120 and upgraded.prompt_log == was.prompt_log and upgraded.signals == was.signals
    assert upgraded.person_ew == PERSON_PRIOR
    assert KeyPipeline().step(old, ev(500)).state[0] == p.STATE_VERSION


def test_a_v9_state_keeps_its_person_share_and_starts_an_empty_rerun_sample():
    from distillguard.models import pipeline as p

    events = [ev(i, turn_index=1 if i % 2 else 0, prompt="why?" if i % 2 else f"Explain {i} step by step.")
              for i in range(120)]
    state, _, _ = run(KeyPipeline(), events)
    current = p._STRUCT.unpack(state)
    layout, count = p._OLD_LAYOUTS[9]
    # written before the re-run share and count (and the reading pace, agent share, batches, app hold)
    assert count == p._NS - 13
    old = layout.pack(9, *current[1:count + 1], *current[p._NS + 1:-2 * p._RERUN - p._BATCH_TABLE - p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 104 - 8 * p._RERUN - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded, was = p.decode_state(old), p.decode_state(state)
    assert upgraded.n == 120 and upgraded.signals == was.signals and upgraded.conv_marks == was.conv_marks
    assert upgraded.person_ew == was.person_ew != PERSON_PRIOR  # v9 had it: kept, not reset
    assert upgraded.rerun_ids == upgraded.rerun_meta == [0] * p._RERUN and upgraded.rerun_hits == 0.0
    assert KeyPipeline().step(old, ev(500)).state[0] == p.STATE_VERSION


def test_a_v10_state_keeps_its_rerun_sample_and_starts_its_reading_pace_afresh():
    from distillguard.models import pipeline as p

    # a script: a 1,500-token answer a minute, each 90 s in coming (every request sent unread)
    events = [ev(i, usage={"input_tokens": 30, "output_tokens": 1500}, latency_ms=90_000) for i in range(120)]
    state, _, _ = run(KeyPipeline(), events)
    was = p.decode_state(state)
    assert was.unread_ew > 0.99 and was.reply_ready > was.last_ts
    layout, count = p._OLD_LAYOUTS[10]
    # written before the reading pace (and the agent share, the batches, the app hold, the items)
    assert count == p._NS - 11
    current = p._STRUCT.unpack(state)
    old = layout.pack(10, *current[1:count + 1], *current[p._NS + 1:-p._BATCH_TABLE - p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 88 - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded = p.decode_state(old)
    assert upgraded.n == 120 and upgraded.rerun_ids == was.rerun_ids and upgraded.conv_marks == was.conv_marks
    assert upgraded.unread_ew == upgraded.reply_ready == 0.0  # nothing unread yet: judged afresh
    after = p.decode_state(KeyPipeline().step(old, ev(120, usage={"output_tokens": 1500}, latency_ms=90_000)).state)
    assert after.n == 121 and after.unread_ew == 0.0 and after.reply_ready > after.last_ts


def test_a_v11_state_keeps_its_reading_pace_and_starts_its_agent_share_afresh():
    from distillguard.models import pipeline as p

    # an agent's loops: three tasks, every later request of each a tool's result answered by a short tool call
    events = [ev(i, conversation_id=f"task-{i // 20}", turn_index=i % 20, params={"tools": 6},
                 usage={"input_tokens": 400 * (i % 20 + 1), "output_tokens": 60}, latency_ms=2_000) for i in range(60)]
    state, _, _ = run(KeyPipeline(), events)
    was = p.decode_state(state)
    assert was.agent_ew > 0.9 and was.agent_held == 1.0
    layout, count = p._OLD_LAYOUTS[11]
    assert count == p._NS - 9  # written before the agent share (and the batches, the app hold, the items)
    current = p._STRUCT.unpack(state)
    old = layout.pack(11, *current[1:count + 1], *current[p._NS + 1:-p._BATCH_TABLE - p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 72 - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded = p.decode_state(old)
    assert upgraded.n == 60 and upgraded.unread_ew == was.unread_ew and upgraded.conv_marks == was.conv_marks
    assert upgraded.agent_ew == upgraded.agent_held == 0.0  # judged afresh


def test_a_v12_state_keeps_its_agent_share_and_starts_its_batches_afresh():
    from distillguard.models import pipeline as p

    # a grader's batches on a mature organisation's key: three questions, 40 answers each
    frame = "Grade the student answer against the rubric, out of 10, with a short reason."
    events = [ev(i, org_id="org-school", account={"created_at": "2025-01-01T00:00:00Z"},
                 prompt=f"{frame}\nQuestion: explain topic number {i // 40} in a paragraph\nStudent answer: take {i}",
                 usage={"input_tokens": 120, "output_tokens": 250}) for i in range(120)]
    state, _, _ = run(KeyPipeline(), events)
    was = p.decode_state(state)
    assert was.batches == 2 and was.batch_ew > 0.9 and any(was.batch_table)
    layout, count = p._OLD_LAYOUTS[12]
    assert count == p._NS - 7  # written before the batches (and the app hold, the items)
    current = p._STRUCT.unpack(state)
    old = layout.pack(12, *current[1:count + 1], *current[p._NS + 1:-p._BATCH_TABLE - p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 56 - 8 * p._BATCH_TABLE - 8 * p._MATERIAL
    upgraded = p.decode_state(old)
    assert upgraded.n == 120 and upgraded.agent_ew == was.agent_ew and upgraded.rerun_ids == was.rerun_ids
    assert upgraded.batches == upgraded.batch_ew == 0.0 and upgraded.batch_table == [0] * p._BATCH_TABLE
    assert KeyPipeline().step(old, ev(500)).state[0] == p.STATE_VERSION


def test_a_reasoning_eval_with_mostly_short_answers_does_not_page_on_its_few_long_ones():
    # Chain-of-thought prompts, nine in ten answered with a verdict, one in ten at length: the
    # mean answer looks like a harvest, but per event the key collected almost nothing.
    events = [ev(i, **_usage(700 if i % 10 == 0 else 60)) for i in range(600)]
    state, alerts, _ = run(KeyPipeline(), events)
    assert alerts == []
    from distillguard.models.pipeline import decode_state
    assert decode_state(state).yield_ew > 0.15  # what the old mean-yield discount alone would have let through


def _reason(alert: dict, signal: str):
    return next(r["value"] for r in alert["reasons"] if r["signal"] == signal)


def test_alerts_say_whether_a_key_turned_or_extracted_from_its_first_events():
    # 300 ordinary requests (events 0-299, 00:00-04:59), then a sweep from event 300 (05:00)
    ordinary = [ev(i, prompt=PLAIN[i % len(PLAIN)].format(i=i), **_usage(700)) for i in range(300)]
    sweep = [ev(i, **_usage(700)) for i in range(300, 700)]
    _, alerts, _ = run(KeyPipeline(), ordinary + sweep)
    first = alerts[0]
    assert _reason(first, "key_history") == "turned"
    assert [r["signal"] for r in first["reasons"]].index("key_history") == 2  # in the routed top five
    assert "2026-02-01T05:00" <= _reason(first, "extraction_since") < "2026-02-01T05:05"
    assert 300 <= _reason(first, "events_before_extraction") < 305
    assert _reason(first, "extraction_style_share_before") < 0.05

    _, alerts, _ = run(KeyPipeline(), [ev(i, **_usage(700)) for i in range(400)])
    assert _reason(alerts[0], "key_history") == "from_first_events"
    assert _reason(alerts[0], "events_before_extraction") == 0
    assert _reason(alerts[0], "extraction_since") == "2026-02-01T00:00:00.000Z"


def test_a_key_whose_past_already_read_like_extraction_is_recurring_not_turned():
    from distillguard.models.pipeline import KeyState

    pipeline, st = KeyPipeline(), KeyState()
    st.run_n, st.run_share = 500, 0.4
    assert pipeline.key_history(st) == "recurring"
    st.run_share = 0.02
    assert pipeline.key_history(st) == "turned"
    st.run_n = 10
    assert pipeline.key_history(st) == "from_first_events"


def test_alert_baselines_are_the_population_median_learned_from_the_keys_scored():
    pipeline = KeyPipeline()
    sweep = [ev(i, key="sweeper", **_usage(700)) for i in range(300)]
    _, before, _ = run(pipeline, sweep)
    # nothing learned yet: the built-in priors
    assert {r["signal"]: r["baseline"] for r in before[0]["reasons"]}["follow_up_share"] == 0.4
    pipeline = KeyPipeline()
    for k in range(110):  # ordinary keys, no follow-up turns, each sampled at its 50th event
        run(pipeline, [ev(i, key=f"u{k}", prompt=PLAIN[i % len(PLAIN)].format(i=i), **_usage(300))
                       for i in range(50)])
    assert pipeline.population.samples == 110
    _, alerts, _ = run(pipeline, sweep)
    baselines = {r["signal"]: r["baseline"] for r in alerts[0]["reasons"]}
    assert baselines["follow_up_share"] == 0.0 and baselines["extraction_style_share"] < 0.01
    # it explains scores, it never changes one
    assert [(a["score"], a["severity"]) for a in alerts] == [(a["score"], a["severity"]) for a in before]


# Alerts say which extraction signal their style share is made of (issue 18: "which
# language-independent signal"): on-call reads a sweep in Chinese, or of exam items in
# Cyrillic, without the prompts.
ZH_COT = "请一步一步地思考并写出推理过程：第{i}题，一个数的三倍加五等于{i}，这个数是多少？"
RU_ITEM = "Вопрос {i}: какое число простое?\nА) {i}\nБ) 6\nВ) 7\nГ) 9"


def test_a_key_alert_names_the_other_language_cue_and_its_language():
    _, alerts, _ = run(KeyPipeline(), [ev(i, prompt=ZH_COT.format(i=i), **_usage(900)) for i in range(120)])
    assert alerts
    assert _reason(alerts[0], "extraction_signals").startswith("other_language_cue ")
    assert "reasoning_elicitation" in _reason(alerts[0], "extraction_signals")
    assert _reason(alerts[0], "cue_language") == "zh"
    signals = [r["signal"] for r in alerts[0]["reasons"]]
    assert signals.index("extraction_signals") == signals.index("extraction_style_share") + 1


def test_a_key_alert_names_the_item_structure_of_a_sweep_without_cue_words():
    _, alerts, _ = run(KeyPipeline(), [ev(i, prompt=RU_ITEM.format(i=i), **_usage(900)) for i in range(200)])
    assert alerts
    value = _reason(alerts[0], "extraction_signals")
    assert "item_structure" in value and "answer_format" in value and "other_language_cue" not in value
    assert "cue_language" not in [r["signal"] for r in alerts[0]["reasons"]]


def test_an_english_phrase_sweep_names_its_families_and_no_language():
    _, alerts, _ = run(KeyPipeline(), [ev(i, **_usage(900)) for i in range(120)])
    value = _reason(alerts[0], "extraction_signals")
    assert "reasoning_elicitation" in value and "grading" in value and "other_language_cue" not in value


def _app_event(i: int) -> RequestEvent:
    """A homework app's traffic on a mature organisation's key: a student's question, then their
    "why?" a minute later in the same conversation."""
    return ev(i, org_id="org-app", account={"created_at": "2025-01-01T00:00:00Z"}, conversation_id=f"c{i // 2}",
              turn_index=i % 2, prompt="why?" if i % 2 else f"Explain question {i} step by step.")


def test_a_v13_state_keeps_its_batches_and_holds_the_app_evidence_again_at_the_apps_bar():
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [_app_event(i) for i in range(120)])
    was = p.decode_state(state)
    assert was.app_held == 1.0 and was.app_ew > 0.4
    layout, count = p._OLD_LAYOUTS[13]
    assert count == p._NS - 3  # written before the app hold (and the items, the app memory)
    current = p._STRUCT.unpack(state)
    old = layout.pack(13, *current[1:count + 1], *current[p._NS + 1:-p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 24 - 8 * p._MATERIAL
    upgraded = p.decode_state(old)
    assert upgraded.n == 120 and upgraded.app_ew == was.app_ew and upgraded.batch_table == was.batch_table
    assert upgraded.app_held == 0.0  # not held at the upgrade: held again at the app's bar, by its next event
    after = p.decode_state(KeyPipeline().step(old, _app_event(120)).state)
    assert after.n == 121 and after.app_held == 1.0



def _item_event(i: int) -> RequestEvent:
    """A long-context item with an answer label on a mature organisation's key, answered under
    the transformation ratio: each document new."""
    return ev(i, org_id="org-rc", account={"created_at": "2025-01-01T00:00:00Z"},
              prompt=f"Read the document.\n\nDocument {i}: " + f"w{i}x " * 300 + "\nQuestion: why?\nAnswer:",
              usage={"input_tokens": 900, "output_tokens": 850})


def test_a_v15_state_keeps_its_app_hold_and_builds_its_long_run_follow_up_share_afresh():
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [_app_event(i) for i in range(120)])
    was = p.decode_state(state)
    assert was.app_held == 1.0 and was.app_memory > 0.3
    layout, count = p._OLD_LAYOUTS[15]
    assert count == p._NS - 1  # written before the app memory
    current = p._STRUCT.unpack(state)
    old = layout.pack(15, *current[1:count + 1], *current[p._NS + 1:])
    assert len(old) == p.STATE_BYTES - 8
    upgraded = p.decode_state(old)
    assert upgraded.n == 120 and upgraded.app_held == 1.0 and upgraded.material == was.material
    assert upgraded.app_memory == 0.0  # built afresh: released at the short-run bars alone meanwhile
    pipeline = KeyPipeline()
    after = p.decode_state(pipeline.step(pipeline.step(old, _app_event(120)).state, _app_event(121)).state)
    assert after.n == 122 and after.app_held == 1.0 and 0.0 < after.app_memory < was.app_memory  # a "why?" counted


def test_a_v14_state_keeps_its_app_hold_and_counts_its_transformations_items_afresh():
    from distillguard.models import pipeline as p

    state, _, _ = run(KeyPipeline(), [_item_event(i) for i in range(60)])
    was = p.decode_state(state)
    assert was.transform_item_ew > 0.9
    layout, count = p._OLD_LAYOUTS[14]
    assert count == p._NS - 2  # written before the items (and the app memory)
    current = p._STRUCT.unpack(state)
    old = layout.pack(14, *current[1:count + 1], *current[p._NS + 1:-p._MATERIAL])
    assert len(old) == p.STATE_BYTES - 16 - 8 * p._MATERIAL
    upgraded = p.decode_state(old)
    assert upgraded.n == 60 and upgraded.app_held == was.app_held and upgraded.transform_ew == was.transform_ew
    assert upgraded.transform_item_ew == 0.0 and upgraded.material == [0] * p._MATERIAL  # afresh
    assert any(was.material)
    after = p.decode_state(KeyPipeline().step(old, _item_event(60)).state)
    assert after.n == 61 and 0.0 < after.transform_item_ew < was.transform_item_ew
