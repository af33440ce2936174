"""A coding agent's traffic as a real product's (``models.products``: ``agent_loops``): its
tool-call steps inside its own conversations cap its incident at info; never a free pass."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from types import SimpleNamespace

from distillguard.models.features import featurize
from distillguard.models.constants import ProductStatus
from distillguard.models.events import RequestEvent, parse_event
from distillguard.models.products import ProductEvidence, ProductEvidenceConfig
from tests.unit.models.test_products import (SEVERITY, T0, _statuses, cluster_alerts, event_doc, pipeline_with,
                                             run, sweep, worst)

# An agent framework's system prompt: it asks for step-by-step work, which reads as extraction
AGENT_SYSTEM = ("You are an autonomous coding agent. Use the tools to read files, run commands and edit code. "
                "Work step by step until the task is done.")
NAMES = ["parser", "cache", "billing", "session", "export", "config", "router", "retry"]


def tool_result(rng: random.Random) -> str:
    """What a tool returns: a test run, or a file's lines (many content words, no person's)."""
    name, other = rng.sample(NAMES, 2)
    if rng.random() < 0.5:
        return (f"collected {rng.randint(20, 90)} items\n\ntests/test_{name}.py ....F..\n___ test_{name}_{other} ___\n"
                f">       assert load_{name}({other}) == expected\nE       AssertionError: assert None == "
                f"{{'{other}': 1}}\n=== 1 failed, {rng.randint(20, 90)} passed in {rng.uniform(1, 9):.2f}s ===")
    return "\n".join(f"{rng.randint(1, 400):6d}\t    {name}_{other} = self.{other}.get({name}, default_{other})"
                     for _ in range(rng.randint(6, 30)))


def agent_traffic(tasks: int, key: str = "agent", account_age_days: float | None = 400.0, tools: int | None = 8,
                  seed: int = 7, step_tokens: tuple[int, int] = (40, 200), edit_tokens: int = 900,
                  start: datetime = T0, pf: str | None = None, org: bool = True,
                  task_gap_minutes: tuple[float, float] = (2, 30), first: int = 0,
                  system_prompt: str = AGENT_SYSTEM) -> list[RequestEvent]:
    """Developers' tasks, each an agent loop in one conversation: the task, then every turn a
    tool's result sent back 0.3-4 s after the answer (history resent), answered by a tool call
    of ``step_tokens``; every fifth turn a code edit of ``edit_tokens``; the next task
    ``task_gap_minutes`` after (the default: a product's many developers, or a harvest).
    ``first``: the index of its first event and task (traffic that goes on a key's earlier)."""
    rng, ts, events = random.Random(seed), start, []
    for t in range(tasks):
        cid, context = f"task-{key}-{first + t}", 0
        for turn in range(rng.randint(8, 16)):
            prompt = f"fix the failing test in tests/test_{rng.choice(NAMES)}.py" if turn == 0 else tool_result(rng)
            out = edit_tokens if turn and turn % 5 == 0 else rng.randint(*step_tokens)
            context += len(prompt) // 4 + 8
            doc = event_doc(first + len(events), ts, prompt, key, account_age_days, (context, out),
                            system_prompt=system_prompt, conversation_id=cid, turn_index=turn,
                            params={"temperature": 0.0, **({"tools": tools} if tools is not None else {})},
                            latency_ms=800 + 15 * out, **({"org_id": f"org-{key}"} if org else {}))
            if pf is not None:
                doc["account"]["payment_fingerprint"] = pf
            parsed = parse_event(json.dumps(doc).encode())
            assert isinstance(parsed, RequestEvent), parsed
            events.append(parsed)
            context += out
            ts += timedelta(seconds=0.8 + 0.015 * out + rng.uniform(0.3, 4.0))
        ts += timedelta(minutes=rng.uniform(*task_gap_minutes))
    return events


def test_a_coding_agent_on_a_mature_account_is_info_at_most_with_its_reasons():
    alerts = run(agent_traffic(14))
    assert alerts, "the framework's system prompt reads as extraction: the key is still reported"
    assert worst(alerts) == SEVERITY["info"]
    assert alerts[0]["reasons"][0] == {"signal": "exculpatory", "value": "agent_loops", "baseline": None,
                                       "weight": None}
    reasons = {r["signal"]: r["value"] for r in alerts[0]["reasons"]}
    assert reasons["brief_answered_turn_share"] >= 0.4 and reasons["conversations_opened"] >= 3
    assert reasons["account_age_days"] >= 30


def test_the_same_loops_at_a_harvests_task_rate_page_on_a_young_account_one_of_no_organisation_or_without_tools():
    """14 tasks in a few hours: more than a developer opens (``developer_max_tasks``)."""
    assert worst(run(agent_traffic(14, account_age_days=3.0))) >= SEVERITY["warning"]
    assert worst(run(agent_traffic(14, org=False))) >= SEVERITY["warning"]
    # the tools claim costs nothing: it only narrows the evidence to agents' traffic
    assert worst(run(agent_traffic(14, tools=None))) >= SEVERITY["warning"]


# A developer's pace: the next task an hour or two after the last (4-6 in six hours); tool calls
# of 80-260 tokens (their reasoning shown), so that the CLI's wording reaches a page uncapped
DEVELOPER_PACE = (60, 120)
DEVELOPER_STEPS = (80, 260)


def test_a_developers_agent_on_a_young_or_personal_account_is_info_sent_with_its_reasons():
    """A coding CLI whose system prompt says "work step by step", run by a developer on a new
    personal key: its incident is capped at info and sent (not an exculpated detection), with
    the agent evidence, the task rate and the account. Guard: the same traffic with no task
    rate allowed pages."""
    from distillguard.contracts.alert import is_exculpated

    pace = dict(task_gap_minutes=DEVELOPER_PACE, step_tokens=DEVELOPER_STEPS)
    for traffic in (agent_traffic(14, account_age_days=3.0, org=False, **pace),
                    agent_traffic(14, account_age_days=3.0, **pace), agent_traffic(14, org=False, **pace)):
        alerts = run(traffic)
        assert alerts and worst(alerts) == SEVERITY["info"]
        first = alerts[0]["reasons"]
        assert first[0]["signal"] == "unverified_agent_loops" and first[0]["value"] >= 0.4
        reasons = {r["signal"]: r["value"] for r in first}
        assert reasons["tasks_per_window"] <= ProductEvidenceConfig().developer_max_tasks
        assert reasons["conversations_opened"] >= 3 and "account_age_days" in reasons
        assert not is_exculpated(alerts[0]), "sent: the traffic may still be a harvest's"
    strict = pipeline_with(developer_max_tasks=0.0)
    assert worst(run(agent_traffic(14, account_age_days=3.0, org=False, **pace), strict)) >= SEVERITY["warning"]


# A developer's usual pace: the next task three to five hours after the last (1-2 in six hours)
USUAL_PACE = (180, 300)


def test_a_developers_agent_at_its_usual_pace_is_recorded_not_sent():
    """A coding CLI run by a developer on a new personal key, one task every few hours: its
    incident is an exculpated detection (recorded, not sent), first reason
    ``exculpatory: developer_agent_loops``, with the task rate against ``developer_held_tasks``.
    Guard: with no held rate allowed the same incident is sent at info."""
    from distillguard.contracts.alert import is_exculpated

    traffic = agent_traffic(14, account_age_days=3.0, org=False, task_gap_minutes=USUAL_PACE,
                            step_tokens=DEVELOPER_STEPS)
    alerts = run(traffic)
    assert alerts and worst(alerts) == SEVERITY["info"]
    assert all(is_exculpated(alert) for alert in alerts)
    assert alerts[0]["reasons"][0] == {"signal": "exculpatory", "value": "developer_agent_loops", "baseline": None,
                                       "weight": None}
    reasons = {r["signal"]: r for r in alerts[0]["reasons"]}
    assert reasons["tasks_per_window"]["value"] <= reasons["tasks_per_window"]["baseline"] == 4.0
    assert reasons["unverified_agent_loops"]["value"] >= 0.4
    sent = run(traffic, pipeline_with(developer_held_tasks=0.0))
    assert sent and worst(sent) == SEVERITY["info"] and not any(is_exculpated(alert) for alert in sent)


def test_a_held_developers_agent_is_sent_once_its_tasks_come_faster():
    """Eight tasks at the usual pace (held), then forty an hour apart at most: the average rate
    passes ``developer_held_tasks`` but not ``developer_max_tasks``, and the same incident is
    sent at info, once. Guard: with the held bar out of reach it stays recorded."""
    from distillguard.contracts.alert import is_exculpated

    slow = agent_traffic(8, key="dev", account_age_days=3.0, org=False, task_gap_minutes=USUAL_PACE,
                         step_tokens=DEVELOPER_STEPS)
    after = datetime.fromtimestamp(slow[-1].ts_ms / 1000, T0.tzinfo) + timedelta(minutes=30)
    busier = agent_traffic(40, key="dev", account_age_days=3.0, org=False, seed=8, start=after, first=len(slow),
                           task_gap_minutes=(20, 30), step_tokens=DEVELOPER_STEPS)
    alerts = run(slow + busier)
    assert is_exculpated(alerts[0])
    sent = [alert for alert in alerts if not is_exculpated(alert)]
    assert len(sent) == 1 and sent[0]["severity"] == "info" and sent[0]["alert_id"] == alerts[0]["alert_id"]
    reasons = {r["signal"]: r for r in sent[0]["reasons"]}
    assert 4.0 < reasons["tasks_per_window"]["value"] <= reasons["tasks_per_window"]["baseline"] == 8.0
    assert all(is_exculpated(alert) for alert in run(slow + busier, pipeline_with(developer_held_tasks=7.9)))


def test_a_developers_agent_that_turns_to_a_harvests_task_rate_is_paged():
    """Eight tasks at a developer's pace, then forty back to back: the rate passes the bar and
    the incident escalates from info."""
    slow = agent_traffic(8, key="dev", account_age_days=3.0, org=False, task_gap_minutes=DEVELOPER_PACE,
                         step_tokens=DEVELOPER_STEPS)
    after = datetime.fromtimestamp(slow[-1].ts_ms / 1000, T0.tzinfo) + timedelta(minutes=30)
    fast = agent_traffic(40, key="dev", account_age_days=3.0, org=False, seed=8, start=after, first=len(slow))
    alerts = run(slow + fast)
    assert alerts[0]["severity"] == "info" and alerts[0]["reasons"][0]["signal"] == "unverified_agent_loops"
    assert worst(alerts) >= SEVERITY["warning"]


# A framework's system prompt with no extraction wording: only what the key does can name it
PLAIN_AGENT_SYSTEM = "You are a coding agent with access to a repository. Use the tools provided."


def test_plain_agent_loops_at_a_harvests_task_rate_are_named_at_info_with_the_rate(monkeypatch):
    """Tool-use traces harvested without a word of extraction: agent loops fed with tool output,
    30 tasks in a few hours on a new personal account. Named at info (``_tool_use_harvest``)
    with the rate, the agent step share and the person share. Guard: the same traffic with the
    rate's bar out of reach raises nothing."""
    from distillguard.models import pipeline

    harvest = agent_traffic(30, account_age_days=3.0, org=False, system_prompt=PLAIN_AGENT_SYSTEM)
    alerts = run(harvest)
    assert alerts and worst(alerts) == SEVERITY["info"]
    reasons = {r["signal"]: r for r in alerts[0]["reasons"]}
    assert alerts[0]["reasons"][0]["signal"] == "harvest_without_wording"
    assert reasons["harvest_content"]["value"] == "tool_use_tasks"
    assert reasons["tasks_per_window"]["value"] >= reasons["tasks_per_window"]["baseline"]
    assert reasons["brief_answered_turn_share"]["value"] >= 0.4
    assert reasons["follow_ups_a_persons_share"]["value"] < 0.2
    monkeypatch.setattr(pipeline, "_TOOL_USE_TASKS", (1000.0, 1001.0))
    assert not run(harvest)


def test_plain_agent_loops_at_a_developers_pace_or_a_persons_turns_raise_nothing(monkeypatch):
    """The same loops at a developer's few tasks a 6 hours raise nothing; so do tool-using
    conversations at a harvest's rate whose follow-ups are a person's short turns (a support
    bot's users), which no agent loop sends. Guards: a bar of one task, and no person test,
    name them."""
    from distillguard.models import pipeline

    pace = dict(task_gap_minutes=DEVELOPER_PACE, step_tokens=DEVELOPER_STEPS)
    developer = agent_traffic(30, account_age_days=3.0, org=False, system_prompt=PLAIN_AGENT_SYSTEM, **pace)
    assert not run(developer)
    rng, ts, chats = random.Random(5), T0, []
    replies = ["ok thanks", "can you check again", "it still says pending", "what about the refund"]
    for conv in range(60):
        for turn in range(6):
            prompt = f"where is my order {rng.randint(1000, 9999)}?" if turn == 0 else rng.choice(replies)
            chats.append(parse_event(json.dumps(event_doc(
                len(chats), ts, prompt, "bot", 3.0, (200 + 40 * turn, rng.randint(30, 90)),
                system_prompt=PLAIN_AGENT_SYSTEM, conversation_id=f"c{conv}", turn_index=turn,
                params={"tools": 3})).encode()))
            ts += timedelta(seconds=rng.uniform(20, 60))
        ts += timedelta(seconds=rng.uniform(5, 30))
    assert not run(chats)
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "_TOOL_USE_TASKS", (1.0, 2.0))
        assert run(developer)
    monkeypatch.setattr(pipeline, "_TOOL_USE_PERSON", (-1.0, -0.5))
    assert run(chats)


def test_developers_of_one_cli_linked_in_a_cluster_are_at_info_from_their_first_events():
    """Eight developers on new personal keys, one CLI, linked (here by a payment fingerprint)
    before any has opened three tasks: their link records carry the pending evidence, so the
    cluster opens at info. Guard: with no task rate allowed it opens at warning."""
    events = sorted((ev for k in range(8) for ev in agent_traffic(
        8, key=f"dev{k}", seed=k, pf="pf-same", account_age_days=3.0, org=False, task_gap_minutes=DEVELOPER_PACE,
        step_tokens=DEVELOPER_STEPS, start=T0 + timedelta(minutes=2 * k))), key=lambda ev: ev.ts_ms)
    assert_cluster_at_info_but_paged_with(events, developer_max_tasks=0.0)


def assert_cluster_at_info_but_paged_with(events, **guard) -> None:
    """The cluster of ``events`` is at info all along, and opens above info with the product
    evidence's ``guard`` settings (which take the evidence away)."""
    held = cluster_alerts(events)
    assert held and {a["severity"] for a in held} == {"info"}
    without = pipeline_with(**guard)
    paged = cluster_alerts(events, without)
    assert paged and paged[0]["severity"] != "info"


def test_the_task_rate_counts_the_first_window_whole():
    evidence = ProductEvidence()
    hour = 3_600_000
    st = SimpleNamespace(convs=8.0, first_ts=0, agent_held=1.0)
    event = SimpleNamespace(ts_ms=hour, org_id=None, account_created_ms=0)
    assert evidence.task_rate(st, event) == 8.0  # 8 tasks in the first hour: the first 6 hours' count
    assert evidence.developer_agent(st, event)
    st.convs = 9.0
    assert not evidence.developer_agent(st, event)
    assert evidence.task_rate(st, SimpleNamespace(ts_ms=18 * hour, org_id=None)) == 3.0  # 9 over three windows
    st.agent_held = 0.0
    assert not evidence.developer_agent(st, SimpleNamespace(ts_ms=18 * hour, org_id=None, account_created_ms=0))


def test_a_harvest_dressed_as_agent_loops_with_long_answers_pages():
    """Tools claimed, its own conversations, tool-like prompts: but every answer at harvest
    length, which is what it came for."""
    assert worst(run(agent_traffic(14, step_tokens=(600, 900)))) == SEVERITY["critical"]


def test_a_mature_agent_key_that_turns_to_a_sweep_is_still_paged():
    loops = agent_traffic(14)
    after = datetime.fromtimestamp(loops[-1].ts_ms / 1000, T0.tzinfo) + timedelta(hours=1)
    alerts = run(loops + sweep(300, after, key="agent", first=len(loops)))
    as_an_agent = [a for a in alerts if a["events_seen"] <= len(loops)]
    assert as_an_agent and worst(as_an_agent) == SEVERITY["info"]
    assert worst(alerts) == SEVERITY["critical"]
    paged = next(a for a in alerts if a["severity"] != "info")
    assert all(r["signal"] != "exculpatory" for r in paged["reasons"])


def _step(evidence: ProductEvidence, st, i: int, turn: int, out: int) -> None:
    doc = event_doc(i, T0 + timedelta(seconds=5 * i), "tool output line one two three four", "agent", 400.0,
                    (1000, out), conversation_id=f"task-{i // 20}", turn_index=turn, params={"tools": 4})
    event = parse_event(json.dumps(doc).encode())
    evidence.learn_one(st, event, featurize(event))
    st.n += 1


def test_the_evidence_once_held_survives_a_run_of_long_edits_and_goes_when_the_loops_stop():
    evidence = ProductEvidence()
    st = SimpleNamespace(n=0, app_ew=0.0, app_memory=0.0, app_held=0.0, person_ew=0.0, transform_ew=0.0, agent_ew=0.0,
                         agent_held=0.0, convs=0.0, app_conv_ids=[0] * 8, app_conv_ts=[0] * 8, rerun_ew=0.0,
                         rerun_hits=0.0, transform_item_ew=0.0, material=[0] * 4)
    for i in range(60):  # three tasks of brief tool calls
        _step(evidence, st, i, i % 20, 80)
    assert st.agent_held and st.agent_ew > 0.9
    for i in range(60, 80):  # twenty long edits in a row: the share sinks to about 0.35
        _step(evidence, st, i, i % 20, 1200)
    assert 0.2 < st.agent_ew < 0.4 and st.agent_held, "held through the agent's own swing"
    for i in range(80, 100):  # then no brief turns at all
        _step(evidence, st, i, i % 20, 1200)
    assert st.agent_ew < 0.2 and not st.agent_held
    assert ProductEvidenceConfig().agent_release_share < ProductEvidenceConfig().agent_step_share


def test_a_cluster_of_customers_agents_on_one_framework_is_at_info_from_its_first_events():
    """Eight customers' agent keys on one framework (its system prompt) and one payment
    fingerprint link after a few events a key, before any has opened three tasks: their link
    records carry the pending evidence, so the cluster opens at info. Guard: without the wait
    it does not."""
    events = sorted((ev for k in range(8) for ev in agent_traffic(
        6, key=f"agent{k}", seed=k, pf="pf-framework", start=T0 + timedelta(minutes=2 * k))),
        key=lambda ev: ev.ts_ms)
    assert_cluster_at_info_but_paged_with(events, agent_pending_share=2.0)


def test_a_developers_agent_stays_pending_while_its_second_task_opens_with_long_edits():
    # A developer on a new personal account: a first task of two steps, a day later a second that
    # opens with three long code edits (the brief-turn share, a mean of a handful, falls to 0.18)
    rng, ts, events = random.Random(3), T0, []
    for cid, outs in (("a", [54, 93]), ("b", [73, 564, 305, 361, 313, 131, 91, 168, 31, 64, 52, 13])):
        for turn, out in enumerate(outs):
            prompt = "fix the failing test in tests/test_cache.py" if turn == 0 else tool_result(rng)
            events.append(parse_event(json.dumps(event_doc(
                len(events), ts, prompt, "dev", 5.0, (400 * (turn + 1), out), system_prompt=AGENT_SYSTEM,
                conversation_id=f"task-{cid}", turn_index=turn, params={"tools": 8})).encode()))
            ts += timedelta(seconds=4)
        ts += timedelta(days=1)
    statuses = [status for status, _, _ in _statuses(events)]
    assert all(s != ProductStatus.NONE for s in statuses[1:]), statuses
    # Guard: at the full bar from the first request it falls out of pending at its 6th
    strict = pipeline_with(pending_early_events=0)
    assert ProductStatus.NONE in [status for status, _, _ in _statuses(events, strict)][1:]
