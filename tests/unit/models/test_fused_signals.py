"""The fused key step (``models.fused_signals``, the default) is the detectors' contract path
(``KeyPipeline(fused=False)``: set_state / learn_one / get_state per detector) bit for bit:
the same rows, alerts, dead letters and packed key states on generated streams that hit
every detector's branches (conversations whose claims hold or break, harvests with and
without wording, requests sent before or after the previous answer could be read, unknown usage, huge budgets, out-of-order, late and duplicate events,
malformed records)."""
from __future__ import annotations

import json
import random

import pytest

from distillguard.devtools.demo_traffic import bad_records, demo_events, hydra_events
from distillguard.models.clusters import ClusterDetector
from distillguard.models.pipeline import KeyPipeline, decode_state
from distillguard.models.step import Record, RequestProcessor

T0_MS = 1_769_904_000_000
WORDS = ("river bridge orbit enzyme tariff sonnet glacier circuit ledger violin harbor pigment molecule senate "
         "canyon algorithm festival vaccine compass mortgage volcano grammar satellite protein museum").split()
WRAPPERS = ("{q}", "Think step by step and show all your reasoning: {q}", "(A) 4 (B) 5 (C) 6 (D) 7. {q}",
            "Rate the following response on a scale of 1 to 10: {q}", "Translate into French: {q} " * 6,
            "elaborate on each stage of your thinking: {q}")


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _key_events(rng: random.Random, key: str, n: int) -> list[dict]:
    """One key's events: a mix of scripted sweeps, people in conversations (claims that hold,
    and fabricated ones), answers of every length, usage sometimes unknown."""
    events, ts = [], T0_MS + rng.randint(0, 3_600_000)
    clock = rng.choice([None, 5_000, 60_000])  # a script's period, or a person's sessions
    conversations: dict[str, int] = {}
    wrapper = rng.choice(WRAPPERS)
    for i in range(n):
        ts += clock * rng.uniform(0.9, 1.1) if clock else rng.expovariate(1 / 300_000)
        doc = {"schema": "llm.request.v1", "event_id": f"{key}-{i}", "ts": _iso(int(ts)), "api_key_id": key,
               "account_id": f"acct-{key[-1]}", "model": "m",
               "prompt": (wrapper if rng.random() < 0.8 else rng.choice(WRAPPERS)).format(
                   q=" ".join(rng.sample(WORDS, 4)) + f" {rng.randint(0, 99)}?")}
        roll = rng.random()
        if roll < 0.3:  # a conversation: a new one, a turn that holds, or one that skips, goes back, is fabricated
            conv = rng.choice(list(conversations) or ["c0"]) if conversations and rng.random() < 0.7 \
                else f"c{key}-{i}"
            turn = conversations.get(conv, -1) + rng.choice([1, 1, 1, 0, 5, -1])
            conversations[conv] = max(0, turn)
            doc["conversation_id"], doc["turn_index"] = conv, max(0, turn)
        elif roll < 0.35:
            doc["conversation_id"], doc["turn_index"] = f"never-{i}", rng.randint(1, 9)
        if rng.random() < 0.85:
            sent = rng.choice([10, 60, 400, 3000])
            doc["usage"] = {"input_tokens": sent, "output_tokens": rng.choice([0, 3, 150, 290, 450, 700, 1500, 4000])}
        if rng.random() < 0.9:  # requests sent before the previous answer could be read, and after
            doc["latency_ms"] = rng.choice([300, 4_000, 20_000, 90_000])
        if rng.random() < 0.3:
            doc["params"] = {"max_tokens": rng.choice([256, 4096, 32000])}
        if rng.random() < 0.2:
            doc["account"] = {"created_at": _iso(T0_MS - rng.choice([1, 90]) * 86_400_000)}
        events.append(doc)
    return events


def _records(seed: int) -> list[Record]:
    rng = random.Random(seed)
    events = [e for k in range(8) for e in _key_events(rng, f"key-{seed}-{k}", rng.randint(60, 260))]
    events += demo_events(seed=seed, users=10, campaign_events=220) + hydra_events(seed=seed, keys=5, per_key=14)
    events.sort(key=lambda e: e["ts"])
    raws = [json.dumps(e).encode() for e in events]
    for i in range(0, len(raws), 97):  # out of order: a record swapped with one further on
        j = min(len(raws) - 1, i + rng.randint(1, 40))
        raws[i], raws[j] = raws[j], raws[i]
    for bad in bad_records() + [b"", b"{oops", b"\xff\xfe", b'{"schema":"llm.request.v1","event_id":"x"}']:
        raws.insert(rng.randrange(len(raws)), bad)
    for _ in range(10):  # duplicates: an event id sent again
        raws.insert(rng.randrange(len(raws)), rng.choice(raws))
    return [Record(raw, None, partition=i % 4, offset=i, position=i if seed % 2 else None)
            for i, raw in enumerate(raws)]


def _run(records: list[Record], fused: bool, batch: int):
    step = RequestProcessor(KeyPipeline(fused=fused), source_topic="llm.requests", allowed_lateness_ms=600_000,
                            clusters=ClusterDetector())
    states, rows, alerts, dead = {}, [], [], []
    for at in range(0, len(records), batch):
        out = step.run(records[at:at + batch], states)
        states.update(out.states)
        rows += out.rows
        alerts += [json.dumps(a, sort_keys=True) for a in out.alerts]
        dead += [(d.reason, d.offset) for d in out.dead_letters]
    return rows, alerts, dead, states


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fused_step_is_the_contract_path_bit_for_bit(seed):
    records = _records(seed)
    fused = _run(records, fused=True, batch=500)
    contract = _run(records, fused=False, batch=173)
    rows, alerts, dead, states = fused
    assert rows == contract[0]  # (floats compared exactly)
    assert alerts == contract[1]
    assert dead == contract[2]
    assert states == contract[3]  # packed bytes
    # the stream reached what the comparison is about
    assert alerts and dead and len(rows) > 1000
    decoded = [decode_state(s) for s in states.values()]
    assert any(st.claims_broken for st in decoded) and any(st.claims_n > st.claims_broken for st in decoded)
    assert any(st.harvest_evidence for st in decoded) and any(st.evidence for st in decoded)
    assert any(st.bigout_ew for st in decoded) and any(st.yield_n < st.n for st in decoded)
    assert any(0.0 < st.unread_ew < 1.0 for st in decoded) and any(st.reply_ready for st in decoded)


def test_fused_is_the_default():
    assert KeyPipeline()._fused is not None and KeyPipeline(fused=False)._fused is None
