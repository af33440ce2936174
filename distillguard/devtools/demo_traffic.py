"""Built-in demo traffic: ordinary users, a templated app and one extraction campaign.

Synthetic text written for the demo (the evaluation corpora in ``../shared`` are internal
data and never ship with the project). Deterministic for a seed. The campaign is one key
sweeping many subjects with reasoning-elicitation and exam-style prompts on a scripted
rhythm; the benign keys chat about a few topics with follow-up turns.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator

from ..contracts.alert import iso_ms
from ..contracts.request_event import SCHEMA

START_MS = 1_769_904_000_000  # 2026-02-01T00:00:00Z

_TOPICS = {
    "cooking": (["How long should I roast a chicken at 200C?", "What can I make with leftover rice and eggs?",
                 "Is it ok to freeze fresh basil?", "Give me a quick vegetarian dinner idea for two."],
                ["What if I don't have an oven thermometer?", "Can I use olive oil instead of butter?",
                 "How do I keep it from drying out?", "Thanks! And a side dish for that?"]),
    "travel": (["Plan a 3 day trip to Lisbon on a budget.", "What should I pack for a week of hiking in Norway?",
                "Is it better to take the train or fly from Paris to Madrid?", "Things to do in Kyoto in the rain?"],
               ["Can you make day 2 more relaxed?", "What about with two kids?",
                "How much should I budget for food?", "Any tips for getting around without a car?"]),
    "email": (["Help me write a polite email asking my landlord to fix the heating.",
               "Rewrite this so it sounds less angry: the delivery was late again and nobody called me.",
               "Draft a short thank-you note to my team after the launch.",
               "How do I say no to a meeting without sounding rude?"],
              ["Make it shorter.", "A bit more formal please.", "Can you add that I'm available Tuesday?",
               "Perfect, now a subject line?"]),
    "code": (["Why does my python list comprehension return None values?",
              "How do I read a CSV file with pandas and skip the first two rows?",
              "What's the difference between git merge and rebase?", "My React component re-renders forever, why?"],
             ["It still fails with a KeyError on 'date'.", "Can you show the full function?",
              "What if the file is 2GB?", "Ok that worked. How would I test it?"]),
    "health": (["What are good stretches for lower back pain after sitting all day?",
                "How much water should I drink when running 10k?", "Tips to fall asleep faster?",
                "Is it normal to feel tired after starting a new workout plan?"],
               ["What about if I also have tight hamstrings?", "How many times a week?",
                "Is coffee in the afternoon a problem?", "Thanks, anything I should avoid?"]),
}

_SUBJECTS = ["abstract algebra", "anatomy", "astronomy", "business ethics", "clinical knowledge",
             "college biology", "college chemistry", "computer security", "econometrics",
             "electrical engineering", "formal logic", "global facts", "high school geography",
             "international law", "jurisprudence", "machine learning", "marketing", "medical genetics",
             "moral disputes", "nutrition", "philosophy", "prehistory", "professional accounting",
             "public relations", "security studies", "sociology", "virology", "world religions",
             "organic synthesis", "compiler design", "distributed systems", "number theory",
             "thermodynamics", "linguistics", "microeconomics", "constitutional law"]
_ASKS = ["Explain the key idea behind {c} in {s}.", "Solve this {s} problem about {c} and justify each step.",
         "Write a detailed exam answer on {c} ({s}).", "Compare two competing views on {c} in {s}.",
         "Give a worked example involving {c} from {s}.", "What is the most common misconception about {c} in {s}?"]
_CONCEPTS = ["the central limit", "equilibrium", "recursion", "feedback loops", "boundary conditions",
             "conservation", "symmetry", "incentives", "causality", "invariants", "selection pressure",
             "duality", "scaling laws", "consistency", "optimisation under constraints"]
_ELICIT = ["Think step by step and show all intermediate reasoning before the final answer.",
           "Reason carefully through every step; write your complete thought process, then answer.",
           "First lay out your full chain of reasoning, then give the answer on the last line.",
           "Grade the following answer on a 1-10 rubric for correctness and completeness, explaining each score.",
           "Answer with the letter of the correct option only: (A) (B) (C) (D).", ""]


def _event(rng: random.Random, ts_ms: int, key: str, account: str, prompt: str, *, conv: str | None,
           turn: int, ua: str, ip: str, asn: int, country: str, params: dict, created: str,
           fingerprint: str, tier: str, model: str = "frontier-3-sonnet") -> dict:
    event_id = "ev_" + hashlib.blake2b(f"{key}:{ts_ms}:{prompt}".encode(), digest_size=10).hexdigest()
    return {
        "schema": SCHEMA, "event_id": event_id,
        "ts": iso_ms(ts_ms),
        "api_key_id": key, "account_id": account, "org_id": None, "model": model,
        "endpoint": "/v1/messages", "prompt": prompt, "system_prompt": None,
        "conversation_id": conv, "turn_index": turn, "params": params,
        "usage": {"input_tokens": max(1, len(prompt) // 4), "output_tokens": rng.randint(40, 900)},
        "status": 200, "latency_ms": rng.randint(300, 9000),
        "client": {"ip": ip, "user_agent": ua, "asn": asn, "country": country},
        "account": {"created_at": created, "payment_fingerprint": fingerprint, "tier": tier},
    }


def demo_events(seed: int = 7, users: int = 60, campaign_events: int = 600, hours: float = 6.0,
                hydra_keys: int = 0) -> list[dict]:
    """A list of request events v1 in ``ts`` order: benign users, one sweep campaign, and
    with ``hydra_keys`` a coordinated campaign spread over that many keys."""
    rng = random.Random(seed)
    horizon = int(hours * 3_600_000)
    events: list[dict] = []
    topics = list(_TOPICS)
    for u in range(users):
        key, account = f"demo_user_{u:03d}", f"demo_acct_{u:03d}"
        home = rng.sample(topics, 2)
        ip = f"82.{rng.randint(1, 250)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        t = rng.randint(0, horizon // 2)
        for c in range(rng.randint(2, 6)):
            topic = rng.choice(home)
            opening, follow = _TOPICS[topic]
            conv = f"conv_{u}_{c}"
            turns = [rng.choice(opening)] + rng.sample(follow, rng.randint(1, 3))
            for turn, prompt in enumerate(turns):
                events.append(_event(rng, START_MS + t, key, account, prompt, conv=conv, turn=turn,
                                     ua="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)", ip=ip, asn=7922,
                                     country="US", params={"max_tokens": 4096, "stream": True},
                                     created="2024-05-02T10:00:00Z", fingerprint=f"pf_demo_{u}", tier="free"))
                t += int(rng.lognormvariate(10.5, 0.8))
            t += int(rng.lognormvariate(13.0, 1.0))
    # A templated integration: one template, narrow and steady. Benign.
    for i in range(300):
        t = int(i * horizon / 300)
        events.append(_event(rng, START_MS + t, "demo_app_support", "demo_acct_app",
                             f"Classify this support ticket into billing, technical or account: "
                             f"ticket #{rng.randint(1000, 9999)} customer says {rng.choice(['refund', 'login', 'crash', 'invoice'])} problem",
                             conv=None, turn=0, ua="python-httpx/0.28.1", ip="34.120.1.7", asn=396982, country="US",
                             params={"max_tokens": 16, "temperature": 0.0}, created="2023-01-10T00:00:00Z",
                             fingerprint="pf_demo_app", tier="tier3"))
    # The extraction campaign: a young account sweeping subjects with elicitation prompts.
    t = horizon // 6
    for i in range(campaign_events):
        s, c = rng.choice(_SUBJECTS), rng.choice(_CONCEPTS)
        prompt = rng.choice(_ASKS).format(s=s, c=c)
        tail = rng.choice(_ELICIT)
        prompt = f"{prompt}\n\n{tail}" if tail else prompt
        events.append(_event(rng, START_MS + t, "demo_sweeper", "demo_acct_sweeper", prompt, conv=None, turn=0,
                             ua="python-requests/2.32.3", ip="45.77.10.20", asn=20473, country="US",
                             params={"max_tokens": 32000, "temperature": 0.0}, created="2026-01-30T12:00:00Z",
                             fingerprint="pf_demo_sweeper", tier="tier1", model="frontier-3-opus"))
        t += rng.randint(4_000, 9_000)
    if hydra_keys:
        events += hydra_events(seed=seed + 1, keys=hydra_keys)
    events.sort(key=lambda e: e["ts"])
    return events


def hydra_events(seed: int = 13, keys: int = 30, per_key: int = 15, start_hour: float = 1.0,
                 shared_payment: bool = True) -> list[dict]:
    """A coordinated campaign: many young keys, each under any per-key threshold, splitting
    one elicitation sweep between them in lockstep. With ``shared_payment`` the accounts
    share a payment fingerprint (bought together); without it they share only content
    frames and timing (a proxy hydra)."""
    rng = random.Random(seed)
    events: list[dict] = []
    tag = "infra" if shared_payment else "proxy"
    base = START_MS + int(start_hour * 3_600_000)
    for round_ in range(per_key):
        t = base + round_ * 90_000
        for k in range(keys):
            s, c = rng.choice(_SUBJECTS), rng.choice(_CONCEPTS)
            prompt = ("Think step by step and show all of your reasoning before answering.\n\n"
                      + rng.choice(_ASKS).format(s=s, c=c))
            ip = (f"45.77.{rng.randint(0, 3)}.{rng.randint(1, 254)}" if shared_payment
                  else f"{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
            events.append(_event(rng, t + rng.randint(0, 20_000), f"demo_hydra_{tag}_{k:03d}",
                                 f"demo_acct_hydra_{tag}_{k:03d}", prompt, conv=None, turn=0,
                                 ua=rng.choice(["python-requests/2.32.3", "python-httpx/0.28.1"]), ip=ip,
                                 asn=rng.choice([20473, 14061, 16276]), country="US",
                                 params={"max_tokens": 16000, "temperature": 0.0},
                                 created="2026-01-31T00:00:00Z",
                                 fingerprint="pf_demo_hydra" if shared_payment else f"pf_demo_{tag}_{k}",
                                 tier="tier1"))
    events.sort(key=lambda e: e["ts"])
    return events


def bad_records() -> list[bytes]:
    """A few records that must be dead-lettered, to show the DLQ in the demo."""
    return [b"{not json", json.dumps({"schema": SCHEMA, "event_id": "bad1"}).encode(),
            json.dumps({"schema": "llm.request.v2", "event_id": "x"}).encode()]


def iter_encoded(events: list[dict]) -> Iterator[tuple[bytes, bytes]]:
    for event in events:
        yield event["api_key_id"].encode(), json.dumps(event, separators=(",", ":")).encode()
