"""The per-event step shared by the Faust workers and ``distillguard replay``.

The key's signals are the River detectors of ``models.detectors``; this module holds the
key's fixed-layout state, learns each event into it, and scores, opens and closes the key's
incident from the signals. Learning runs through the detectors' contract (``set_state`` /
``learn_one`` / ``get_state``: the reference, ``KeyPipeline(fused=False)``) or, by default,
through ``models.fused_signals``: the same arithmetic on the decoded state in one pass,
proven identical by ``tests/unit/models/test_fused_signals.py``.

``KeyPipeline.step`` takes the key's serialized state (or ``None`` for a new key), one
validated event and its input offset, and returns the new serialized state, the feature
row for ClickHouse (never the prompt text) and, when the key's incident opens or
escalates, one alert v1 dict. It is deterministic and does no I/O, so replaying a file and
streaming it through Kafka give the same alerts.
"""
from __future__ import annotations

import functools
import math
import operator
import struct
from dataclasses import dataclass, field

from ..contracts.alert import Alert, Severity
from ..contracts.alert import iso_ms as _iso  # the one time format of every record
from .batches import TABLE as BATCH_TABLE
from .constants import (BASE_EXTRACTION_RATE, CAMPAIGN_EXTRACTION_RATE, HARVEST_HI_TOKENS, HARVEST_LO_TOKENS,
                        ProductStatus)
from .detectors import (AnswerLength, ConversationClaims, ExtractionRateCUSUM, ExtractionShare,
                        FollowUpShare, HarvestOnset, InterArrivalTiming, LargeOutputBudget, OutputYield, PromptLength,
                        ReadingPace, TemplateRepetition, TopicNovelty, regularity)
from .detectors.conversation_claims import CLAIM_KINDS, CLOCK_MIN_EVENTS, CLOCK_REGULARITY, PERSON_PRIOR, on_a_clock
from .events import RequestEvent
from .features import EventFeatures, answered_style, featurize
from .fused_signals import FusedSignals
from .multilingual import LANGUAGE_SHIFT, LANGUAGES
from .population import PopulationProfile
from .products import CONVERSATION_RING, MATERIAL_RING, ProductEvidence, ProductEvidenceConfig
from .reruns import RERUN_SAMPLE


def signal_inputs(f: EventFeatures) -> dict:
    """The features the per-key signal detectors learn from (``models.detectors``). ``follow_up``
    is the client's claim; ``KeyPipeline`` replaces it with whether the claim holds."""
    return {"extraction_style": answered_style(f), "output_tokens": f.output_tokens, "follow_up": f.followup,
            "simhash": f.simhash, "template": f.template_hash, "max_tokens": f.max_tokens, "ts_ms": f.ts_ms,
            "conversation": f.conversation, "turn": f.turn, "input_tokens": f.input_tokens,
            "content_words": f.content_words, "turn_words": f.turn_words, "prompt_chars": f.prompt_chars,
            "latency_ms": f.latency_ms}


@dataclass(slots=True)
class StepResult:
    state: bytes
    row: dict | None
    alert: dict | None
    duplicate: bool = False
    features: "EventFeatures | None" = None  # for the cross-key (cluster) detector
    key_events: int = 0  # the key's events with this one (0: a duplicate)
    # The key's traffic holds a real product's exculpatory evidence at this event (1) or that
    # evidence is pending (2: an app's, 3: an evaluation's), else 0 (models.products,
    # LinkRecord.product): the cluster
    # detector holds a cluster of such keys at info.
    product: int = 0


# The feature row written to ClickHouse for every processed event (sinks.clickhouse owns the
# table; a new column here needs a migration there and its type in models.columns, which the
# validator checks every value against). No prompt text, by construction.
ROW_COLUMNS: tuple[str, ...] = (
    "event_id",        # str
    "ts_ms",           # int, event time, epoch ms
    "api_key_id",      # str
    "account_id",      # str
    "org_id",          # str ('' when unknown)
    "model",           # str
    "endpoint",        # str ('' when unknown)
    "asn",             # int (0 when unknown)
    "country",         # str ('' when unknown)
    "prompt_chars",    # int
    "input_tokens",    # int (0 when unknown)
    "output_tokens",   # int (0 when unknown)
    "status",          # int (0 when unknown)
    "latency_ms",      # int (0 when unknown)
    "score",           # float, the key's detector score after this event
    "extraction_style",  # float in [0, 1], how much this prompt reads like extraction
    "topic_bucket",    # int in [0, 255], coarse topic of the prompt sketch
    "template_hash",   # int, uint64 fingerprint of the masked prompt template
    "alerting",        # int 0/1, key has an open incident
    # the key's signals after this event (what its score is made of), each in [0, 1]
    "style_share",     # share of extraction-style prompts
    "output_yield",    # mean answer length as a harvest (1 = 500+ output tokens)
    "follow_up_share",  # share of follow-up turns (conversations)
    "template_repetition",  # share of prompts reusing a recent opening frame
    "topic_novelty",   # how new each prompt's content is against the key's recent ones
    "extraction_evidence",  # sequential evidence of a campaign's extraction rate (>= 0; info level at 15)
)


# ---------------------------------------------------------------------------------------
# The per-key detector. State is one fixed-layout little-endian byte string per key
# (version byte + float64 scalars + uint32/uint64 rings + uint16 topic histogram), never
# pickle. Decoded into plain Python numbers for the step: numpy scalar access costs more
# than the arithmetic on a few dozen values.
# ---------------------------------------------------------------------------------------
STATE_VERSION = 16
_SCALARS = ("n", "last_offset", "last_ts", "first_ts", "style_ew", "followup_ew", "novelty_ew", "template_ew",
            "gap_mean", "gap_var", "bigout_ew", "score", "incident", "alerting", "severity",
            "quiet", "yield_ew", "yield_n", "evidence",
            # the key's current run of extraction evidence (see KeyPipeline._learn): the event
            # time it began, the events the key had sent before it, its extraction-style share then
            "run_ts", "run_n", "run_share",
            # exculpatory evidence of a real product (models.products): consistent follow-up
            # share, transformation share, conversations the key opened
            "app_ew", "transform_ew", "convs",
            # conversation claims (ConversationClaims): share of events whose follow-up claim did
            # not hold, follow-up claims, of which broken; typical answer length (AnswerLength)
            "claims_share", "claims_n", "claims_broken", "answer_log", "answer_n",
            # the key's current run of long answers (HarvestOnset): its evidence, the events before it
            "harvest_evidence", "harvest_start",
            # typical prompt length (PromptLength): log(1 + input tokens), 0.0 before any
            "prompt_log",
            # share of the follow-ups short as a person's (ConversationClaims.person)
            "person_ew",
            # re-runs of one item set (models.reruns): share among recent probes, their count
            "rerun_ew", "rerun_hits",
            # when the key's previous answer could have been read, share of requests sent before
            # (ReadingPace)
            "reply_ready", "unread_ew",
            # share of requests that continue a conversation the key opened and are answered
            # briefly, and whether it holds as an agent's (models.products: tool-call steps)
            "agent_ew", "agent_held",
            # graded batches (models.batches): share of one-shot requests repeating a recurring line,
            # batches retired, the event count at the last and its first-seen count (the table of
            # recurring lines is the layout's last array)
            "batch_ew", "batches", "batch_last", "batch_begun",
            # whether the app evidence holds (models.products: held at the app's bar, let go under
            # a lower one)
            "app_held",
            # share of the key's transformations whose prompt posed an item (models.products)
            "transform_item_ew",
            # the app's long-run consistent follow-up share, capped (models.products: a quiet spell
            # of an app with a long history of follow-ups does not let its evidence go)
            "app_memory")
_RING = 8
_CONVERSATIONS = 16  # the key's most recent conversations checked claims are held against
_CLAIM_ARRAYS = f"{_CONVERSATIONS}I{_CONVERSATIONS}I{len(CLAIM_KINDS)}H"
_YIELD_TOKENS = 500.0  # output tokens that count as a full harvest for one request
_BINS = 64
_CONV = CONVERSATION_RING  # products: the key's recent conversations' id hashes, last turn times (s)
# Two conversation rings for now (ProductEvidence's 8 with turn times, ConversationClaims' 16
# with marks): they were built side by side; folding them into one is known work.
# Which extraction signal fired, by ``EventFeatures.families`` bit (features: the English phrase
# families, the reworded cues; multilingual: a cue of another language, an item's shape): the
# key's events with each (saturating uint16) and the language of its last other-language cue
# (an index into ``multilingual.LANGUAGES`` + 1), so an alert says what its style share is made of.
EXTRACTION_SIGNALS = ("reasoning_elicitation", "grading", "answer_format", "dataset_generation", "tool_use_traces",
                      "reworded_reasoning", "reworded_grading", "other_language_cue", "item_structure")
_SIGNAL_VALUES = len(EXTRACTION_SIGNALS) + 1
_SIGNAL_BITS = (1 << len(EXTRACTION_SIGNALS)) - 1
_RINGS = f"{_RING}I{_RING}Q{_RING}I{_BINS}H{_CONV}I{_CONV}I{_CLAIM_ARRAYS}"
_RERUN = RERUN_SAMPLE  # the re-run sample (models.reruns): fingerprints, model mark + hour
_BATCH_TABLE = BATCH_TABLE  # graded batches (models.batches): the key's recurring lines, uint64 each
_MATERIAL = MATERIAL_RING  # products: material sketches of the key's last transformations, uint64 each
_STRUCT = struct.Struct(f"<B{len(_SCALARS)}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I{_BATCH_TABLE}Q{_MATERIAL}Q")
STATE_BYTES = _STRUCT.size
# Older layouts are the current one with fewer trailing scalars (v3: up to "yield_n", v4: up to
# "evidence", v5: up to "run_share") and no conversation rings: read them with the missing
# values at 0, so an upgrade keeps every key's history instead of re-learning the whole
# population.
_OLD_LAYOUTS = {version: (struct.Struct(f"<B{count}d{_RING}I{_RING}Q{_RING}I{_BINS}H"), count)
                for version, count in ((3, _SCALARS.index("evidence")), (4, _SCALARS.index("run_ts")),
                                       (5, _SCALARS.index("app_ew")))}
_CLAIM_VALUES = 2 * _CONVERSATIONS + len(CLAIM_KINDS)
# v6: scalars up to "answer_n", the conversation rings, no extraction signal counts
_V6_SCALARS = _SCALARS.index("harvest_evidence")
_OLD_LAYOUTS[6] = (struct.Struct(f"<B{_V6_SCALARS}d{_RINGS}"), _V6_SCALARS)
# v7: every ring and the signal counts, scalars up to "harvest_start"
_V7_SCALARS = _SCALARS.index("prompt_log")
_OLD_LAYOUTS[7] = (struct.Struct(f"<B{_V7_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H"), _V7_SCALARS)
# v8: v7 and the typical prompt length; no share of a person's follow-ups (read as where a
# new key's starts, PERSON_PRIOR: read as 0, every app key would have its pasted questions
# stop counting as conversation at the upgrade, until short follow-ups raised it again)
_V8_SCALARS = _SCALARS.index("person_ew")
_OLD_LAYOUTS[8] = (struct.Struct(f"<B{_V8_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H"), _V8_SCALARS)
# v9: v8 and the share of a person's follow-ups; no re-run sample (read as empty: a key's
# evaluation evidence starts afresh at the upgrade)
_V9_SCALARS = _SCALARS.index("rerun_ew")
_OLD_LAYOUTS[9] = (struct.Struct(f"<B{_V9_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H"), _V9_SCALARS)
# v10: v9 and the re-run sample; no reading pace (read as 0: no request unread so far, the next
# one judged against nothing, as a new key's)
_V10_SCALARS = _SCALARS.index("reply_ready")
_OLD_LAYOUTS[10] = (struct.Struct(f"<B{_V10_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I"), _V10_SCALARS)
# v11: v10 and the reading pace; no agent-step share (read as 0, not held: the agent evidence
# starts afresh, a few dozen of the key's events)
_V11_SCALARS = _SCALARS.index("agent_ew")
_OLD_LAYOUTS[11] = (struct.Struct(f"<B{_V11_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I"), _V11_SCALARS)
# v12: v11 and the agent-step share; no graded batches (read as 0, an empty table: the evidence
# starts afresh)
_V12_SCALARS = _SCALARS.index("batch_ew")
_OLD_LAYOUTS[12] = (struct.Struct(f"<B{_V12_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I"), _V12_SCALARS)
# v13: v12 and the graded batches; the app evidence not held yet (read as 0: it holds again at
# the app's bar, as a new key's does)
_V13_SCALARS = _SCALARS.index("app_held")
_OLD_LAYOUTS[13] = (struct.Struct(f"<B{_V13_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I{_BATCH_TABLE}Q"),
                    _V13_SCALARS)
# v14: v13 and the app hold; no share of transformations that were items, no material sketches
# (read as 0 and empty: a key held as a transformation holds until about 14 of its next
# transformations are items, or until its next is the same material as one before)
_V14_SCALARS = _SCALARS.index("transform_item_ew")
_OLD_LAYOUTS[14] = (struct.Struct(f"<B{_V14_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I{_BATCH_TABLE}Q"),
                    _V14_SCALARS)
# v15: v14 and the items' share and material sketches; no long-run follow-up share (read as 0: a
# held app's evidence is let go at the short-run bars alone, as before, until its history builds)
_V15_SCALARS = _SCALARS.index("app_memory")
_OLD_LAYOUTS[15] = (struct.Struct(
    f"<B{_V15_SCALARS}d{_RINGS}{_SIGNAL_VALUES}H{_RERUN}I{_RERUN}I{_BATCH_TABLE}Q{_MATERIAL}Q"), _V15_SCALARS)
# Per-event harvest ramp of the evidence test: an answer under _HARVEST_LO output tokens
# carries no reasoning worth distilling (a letter, a label, a number), one of _HARVEST_HI or
# more is a full harvest.
_HARVEST_LO, _HARVEST_HI = HARVEST_LO_TOKENS, HARVEST_HI_TOKENS
# A key with this many events before its run of extraction evidence had a past of its own
# (fraud accounts warm up with a few requests at most; dev-s1's turned keys sent 21-1,218).
TURNED_AFTER = 20
# The key signals (KeyState scalars) whose population median alert baselines show, and how
# often a key is sampled
_POPULATION_SIGNALS = ("style_ew", "novelty_ew", "template_ew", "followup_ew", "yield_ew")
# The alert reasons that state one of them as their baseline: reason -> (signal, prior)
_POPULATION_BASELINES = {"extraction_style_share": ("style_ew", BASE_EXTRACTION_RATE),
                         "topic_novelty": ("novelty_ew", 0.5), "template_repetition": ("template_ew", 0.2),
                         "follow_up_share": ("followup_ew", 0.4), "output_yield": ("yield_ew", 0.5)}
_POPULATION_EVERY = 50
# An extraction-style share under this is an ordinary key's (dev-s1: casual users 0-0.07,
# every benign scenario's median under 0.04; campaigns 0.2 and up once running).
_ORDINARY_SHARE = 0.15
# Harvest without wording (KeyPipeline._harvest_score): each condition ramps from 0 to 1
# between two levels. Timing regularity: people under 0.5, scripts 0.6 and up (dev-s1: casual
# and reseller keys 0.2-0.47). Breadth (topic novelty x no repeated frame): an app's
# template scores near 0, a sweep 0.7-0.8. Disguise: share of events whose conversation
# claim does not hold. One-shot: 1 - share of conversation turns that hold.
_HARVEST_REGULARITY = (0.5, CLOCK_REGULARITY)  # (fully a script where a key is on a clock: 0.65)
# ... or its requests' share sent before the previous answer could be read (ReadingPace): people's
# keys 0-0.09 (fabricated-conversations-c, dev-s1), developers' jobs 0.52-0.95, small evaluations
# 0.12-0.13 in the median and up to 0.98
_HARVEST_UNREAD = (0.4, 0.6)
_HARVEST_BREADTH = (0.4, 0.6)
# Resampling (1 - topic novelty): the same few prompts sent again and again for fresh long
# answers (several samples per item, as distillation by rejection sampling wants) is a harvest
# as much as breadth is. An app's fixed frame around new questions keeps novelty at 0.5+; a key
# resending its items, under 0.2 (harvest-plain stress stream: 0.0-0.1; no benign key of
# dev-s1, multilingual or product-negatives reaches 0.6 with the other conditions).
_HARVEST_RESAMPLING = (0.6, 0.8)
_RESAMPLED_ANSWER_LOG = (math.log(1000.0), math.log(2000.0))  # typical answer of resampled items, tokens
_HARVEST_DISGUISE = (0.2, 0.5)
# Bare items: the typical answer over the typical prompt (log ratio), with a sustained run of
# answers over ordinary length (HarvestOnset's evidence: a sequential test of the long answers'
# rate, where a typical answer of ~400 tokens, AnswerLength's bar, is no harvest alone). A sweep
# of free-form instructions sends a dozen tokens for ~400 and often far more back
# (stress-multilingual's one-key Chinese sweep: x28, its run at the cap of 20 for 450 of 750
# events). A developer's scripts send context with each request (dev-s1 power_dev: x7-9); a
# script relaying short chat messages is as terse but gets chat replies (stress-product-negatives
# power_dev: x19-25, runs of at most 9.3); people's chat is terse too, but people fail the timing
# and breadth conditions. A sweep padding its prompts to ~40 tokens passes under it.
_HARVEST_EXPANSION = (math.log(12.0), math.log(20.0))
_BARE_ITEMS_RUN = (12.0, 18.0)  # HarvestOnset evidence (cap 20)
_HARVEST_ONE_SHOT = (0.7, 0.9)
_HARVEST_MIN_EVENTS = CLOCK_MIN_EVENTS  # the timing estimate needs a few dozen gaps (30)
_HARVEST_MIN_ANSWERS = 10
_HARVEST_CAP = 0.7  # over the default info (0.5) and warning (0.65) levels, under critical (0.8)
# A harvest at a person's pace (KeyPipeline._paced_run): no clock to prove a script, so it
# takes what a reader's use does not sustain: a run of long answers to short new questions
# (HarvestOnset's evidence at its cap, 18-20 of 20, for 100-200 events: hundreds of worked
# answers, none followed up). On seed 6 and four stress streams no benign key had a single
# event at that evidence, the one-key sweeps and turned keys it is for 280-750; it names no
# benign key of dev-s1, seeds 2-7, the stress streams or their +1000 and +2000 draws.
# The answers many times the question (x4-6 and up): a translation or a summary is about its
# input's size, a worked answer to a one-line instruction 10-50x. At most info: a dashboard
# entry with its reasons, never a page.
_PACED_EVIDENCE = (12.0, 18.0)
_PACED_RUN = (100.0, 200.0)
_PACED_EXPANSION = (math.log(4.0), math.log(6.0))
_PACED_CAP = 0.6  # over the default info level (0.5), under warning (0.65)
# A harvest on a strict clock (KeyPipeline._clocked_run): a script sending new one-shot
# items on a clock far stricter than the harvest's bar (regularity 0.9+: a fixed sleep with
# little jitter) for a hundred events or more collects chat-length answers (200-300 tokens
# and up) as a dataset, where a harvest of reasoning needs AnswerLength's 400-800. Built for a
# drifting key of stress-unwrapped-plain-corpora (1,820 plain one-shot requests of every
# corpus at a 5 s clock, regularity 0.90-0.92, typical answer 335 tokens: missed on every
# path). People fail the clock (dev-s1 casual and reseller keys 0.2-0.47); developers'
# scripts over varied questions, 0.70-0.71 with answers of 250-310 tokens (power_dev of
# seed 2 and product-negatives-d/-e), and a script with +-30 % jitter, 0.85
# (test_claims_and_harvest), stay under it; scripts with fixed frames fail breadth; scripts
# that converse fail one-shot. An evaluation of free-form instructions at a strict clock is
# named at info (its first run is, by its traffic, a harvest). At most info, as the paced run.
_CLOCKED_REGULARITY = (0.84, 0.9)
_CLOCKED_ANSWER_LOG = (math.log(200.0), math.log(300.0))
_CLOCKED_RUN = (100.0, 150.0)  # the key's events
# A harvest of tool-use traces (KeyPipeline._tool_use_harvest): agent loops (a turn of the key's
# own conversation, tools declared, answered briefly: models.products' agent step share) whose
# follow-ups are tool output, not a person's, opening tasks faster than a developer does. On
# stress-agent-newcomers' three draws the developers' agents opened 1-7.5 tasks a 6 hours on
# average since their first request (products' ``task_rate``, the window of
# ``developer_task_window_hours``) at agent step shares of 0.3-0.67; the harvest's heads 15-60,
# and the plain heads on young personal accounts that no other path named (14 over the three
# draws) 26-59 at 0.53-0.70. Developers' scripts that declare tools reach 25-30 tasks but take
# agent steps on 0.15-0.17 of their requests. A product's agents on an organisation's mature
# account open 10-16 (product-negatives-f, agent-harvest): their agent evidence holds them at
# info whatever the score (models.products), so the rule only speaks where that evidence does not
# excuse. At most info: a coding agent's sub-agents open conversations too, so a busy developer
# may pass the rate; the record says why, the page is the cohort's or a cluster's to make.
_TOOL_USE_STEPS = (0.3, 0.4)  # agent step share
_TOOL_USE_TASKS = (10.0, 15.0)  # tasks a developer_task_window_hours
_TOOL_USE_PERSON = (0.7, 0.8)  # 1 - share of the follow-ups short as a person's
_TOOL_USE_CAP = 0.6  # the paced harvest's: over the default info level (0.5), under warning (0.65)
_NS = len(_SCALARS)
# Held follow-ups a key needs before an alert says they are seldom a person's (a few could be
# a person's by chance: the share starts at its prior and moves 0.1 a follow-up).
_PERSON_REASON_MIN_HELD = 10
# The rank of an incident held at info as an exculpated detection (a developer's agent at its
# usual pace, models.products): under info's (1), so that it is sent once it is no longer held
_HELD_INFO = 0.5


def _count_signals(counts: list, families: int) -> None:
    """Count the event in ``counts`` (``EXTRACTION_SIGNALS`` order) for each signal bit it has,
    and keep its cue language, if any, in the last slot."""
    bits = families & _SIGNAL_BITS
    while bits:  # (the set bits only: most events have one or two of the nine)
        low = bits & -bits
        bits ^= low
        i = low.bit_length() - 1
        if counts[i] < 65535:
            counts[i] += 1
    language = families >> LANGUAGE_SHIFT & 0x1F
    if language:
        counts[-1] = language


def _ramp(value: float, lo: float, hi: float) -> float:
    """0 at ``lo`` or under, 1 at ``hi`` or over, linear between."""
    return max(0.0, min(1.0, (value - lo) / (hi - lo)))


def _long_answer_run(st: "KeyState") -> int:
    """The key's events since its current run of long answers began (HarvestOnset's last
    zero), 0 outside one."""
    return int(st.n - st.harvest_start) if st.harvest_evidence > 0.0 else 0


class KeyState:
    """One key's decoded state: named scalars, its rings and the topic histogram."""

    __slots__ = _SCALARS + ("ids", "sketch", "templates", "hist", "app_conv_ids", "app_conv_ts", "conv_ids",
                            "conv_marks", "claim_kinds", "signals", "rerun_ids", "rerun_meta", "batch_table",
                            "material")

    def __init__(self, values: tuple | None = None) -> None:
        if values is None:
            for name in _SCALARS:
                setattr(self, name, 0.0)
            self.last_offset = -1.0
            self.person_ew = PERSON_PRIOR
            self.ids, self.sketch, self.templates = [0] * _RING, [0] * _RING, [0] * _RING
            self.hist = [0] * _BINS
            self.app_conv_ids, self.app_conv_ts = [0] * _CONV, [0] * _CONV
            self.conv_ids, self.conv_marks = [0] * _CONVERSATIONS, [0] * _CONVERSATIONS
            self.claim_kinds = [0] * len(CLAIM_KINDS)
            self.signals = [0] * _SIGNAL_VALUES
            self.rerun_ids, self.rerun_meta = [0] * _RERUN, [0] * _RERUN
            self.batch_table = [0] * _BATCH_TABLE
            self.material = [0] * _MATERIAL
            return
        for name, value in zip(_SCALARS, values[1:_NS + 1]):
            setattr(self, name, value)
        at = _NS + 1
        self.ids = list(values[at:at + _RING])
        self.sketch = list(values[at + _RING:at + 2 * _RING])
        self.templates = list(values[at + 2 * _RING:at + 3 * _RING])
        at += 3 * _RING
        self.hist = list(values[at:at + _BINS])
        at += _BINS
        self.app_conv_ids = list(values[at:at + _CONV])
        self.app_conv_ts = list(values[at + _CONV:at + 2 * _CONV])
        at += 2 * _CONV
        self.conv_ids = list(values[at:at + _CONVERSATIONS])
        self.conv_marks = list(values[at + _CONVERSATIONS:at + 2 * _CONVERSATIONS])
        at += 2 * _CONVERSATIONS
        self.claim_kinds = list(values[at:at + len(CLAIM_KINDS)])
        at += len(CLAIM_KINDS)
        self.signals = list(values[at:at + _SIGNAL_VALUES])
        at += _SIGNAL_VALUES
        # (a layout before v10 ends here: an empty re-run sample)
        self.rerun_ids = list(values[at:at + _RERUN]) or [0] * _RERUN
        self.rerun_meta = list(values[at + _RERUN:at + 2 * _RERUN]) or [0] * _RERUN
        at += 2 * _RERUN
        # (a layout before v13 ends before it: an empty table)
        self.batch_table = list(values[at:at + _BATCH_TABLE]) or [0] * _BATCH_TABLE
        at += _BATCH_TABLE
        # (a layout before v15 ends before it: no material sketches)
        self.material = list(values[at:at + _MATERIAL]) or [0] * _MATERIAL


def decode_state(data: bytes | None) -> KeyState:
    if data and data[0] == STATE_VERSION and len(data) == STATE_BYTES:
        return KeyState(_STRUCT.unpack(data))
    old = _OLD_LAYOUTS.get(data[0]) if data else None
    if old is not None and len(data) == old[0].size:
        layout, count = old
        values = layout.unpack(data)
        if count >= _V7_SCALARS:  # v7 and later: every array, all but their missing trailing scalars
            st = KeyState(values[:count + 1] + (0.0,) * (_NS - count) + values[count + 1:])
        elif count == _V6_SCALARS:  # v6: the conversation rings, no signal counts
            st = KeyState(values[:count + 1] + (0.0,) * (_NS - count) + values[count + 1:] + (0,) * _SIGNAL_VALUES)
        else:
            st = KeyState(values[:count + 1] + (0.0,) * (_NS - count) + values[count + 1:]
                          + (0,) * (2 * _CONV + _CLAIM_VALUES + _SIGNAL_VALUES))
        if count < _V9_SCALARS:
            st.person_ew = PERSON_PRIOR  # (see _V8_SCALARS)
        return st
    # New key, or an unknown layout (a newer worker's): start afresh rather than misread it.
    return KeyState()


# Where ``last_ts`` sits in the current layout (``<``: no padding, one byte of version first).
_LAST_TS = struct.Struct("<d")
_LAST_TS_AT = 1 + _LAST_TS.size * _SCALARS.index("last_ts")


def state_last_ts(data: bytes | None) -> float:
    """``decode_state(data).last_ts``, read without decoding the rest: replay's lateness test
    asks it of every event, and a whole decode cost ~4 % of replay."""
    if data and data[0] == STATE_VERSION and len(data) == STATE_BYTES:
        return _LAST_TS.unpack_from(data, _LAST_TS_AT)[0]
    return decode_state(data).last_ts


_GET_SCALARS = operator.attrgetter(*_SCALARS)


def encode_state(st: KeyState) -> bytes:
    return _STRUCT.pack(STATE_VERSION, *_GET_SCALARS(st), *st.ids, *st.sketch, *st.templates, *st.hist,
                        *st.app_conv_ids, *st.app_conv_ts, *st.conv_ids, *st.conv_marks, *st.claim_kinds,
                        *st.signals, *st.rerun_ids, *st.rerun_meta, *st.batch_table, *st.material)


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds and per-entity overrides of the per-key detector (pure data, no env).

    ``thresholds`` are score levels for info / warning / critical; an incident closes
    after ``close_after`` consecutive events below ``close_ratio`` x the info threshold.

    The evidence test (a one-sided CUSUM, Page 1954) asks of every key: is its rate of
    harvested extraction-style prompts nearer ``campaign_rate`` than the population's
    ``base_rate``? Each event adds its log-likelihood ratio; the sum is floored at 0 and
    capped at 2 x ``evidence_threshold``, which scores as the info level (2 x scores 1.0).
    A campaign diluted with ordinary prompts stays under every share threshold but keeps
    adding evidence; a user's occasional burst of "step by step" decays away.
    """

    thresholds: tuple[float, float, float] = (0.5, 0.65, 0.8)
    min_events: int = 50
    #: a key on a young account (or one of unknown age) whose score is at the critical level opens
    #: its incident from this many events (at most ``min_events``): a content cohort's or a hydra's
    #: styled heads send 10-40 requests each, and a score at critical over 20 of them is no chance
    #: run of an ordinary key's. Such an incident opens at warning (reason
    #: ``opened_before_min_events``) and pages at critical from ``min_events`` as any key's: the
    #: heads' campaign pages once, by its cluster. Only where no product evidence could cap the
    #: incident later (an app's, a transformation's, a grader's, an evaluation's need a mature
    #: account; ProductEvidence.mature_account): a real service on a mature account needs its first
    #: 50 requests to show its evidence (a rewriting service's "step by step" frame reads at critical)
    critical_min_events: int = 20
    alpha: float = 0.03
    close_ratio: float = 0.6
    close_after: int = 200
    allow_keys: frozenset[str] = frozenset()
    allow_accounts: frozenset[str] = frozenset()
    key_threshold_scale: dict[str, float] = field(default_factory=dict)
    account_threshold_scale: dict[str, float] = field(default_factory=dict)
    base_rate: float = BASE_EXTRACTION_RATE
    campaign_rate: float = CAMPAIGN_EXTRACTION_RATE
    evidence_threshold: float = 15.0
    #: the provider's account tiers reached only with a payment history: with an organisation and
    #: half a year of age, an account verified for the evaluation evidence (models.products)
    verified_tiers: frozenset[str] = ProductEvidenceConfig.verified_tiers
    #: the deployment's secret key of the re-run sample's fingerprints (models.reruns, up to 64
    #: bytes; the workers' DG_DETECTOR_SAMPLE_KEY, never the overrides file): with the public
    #: default, an attacker can tell which of its items are sampled
    sample_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if len(self.sample_key.encode()) > 64:
            raise ValueError("sample_key: at most 64 bytes (BLAKE2b's key)")

    #: what an operator's overrides file may set (``from_mapping``)
    OVERRIDABLE = ("thresholds", "min_events", "critical_min_events", "allow_keys", "allow_accounts",
                   "key_threshold_scale", "account_threshold_scale", "verified_tiers")

    @classmethod
    def from_mapping(cls, overrides: dict) -> "DetectorConfig":
        """A config from an operator's overrides (a parsed YAML/JSON mapping), validated.

        >>> c = DetectorConfig.from_mapping({"allow_keys": ["key_ci"], "key_threshold_scale": {"key_eval": 1.5}})
        >>> sorted(c.allow_keys), c.key_threshold_scale, c.min_events
        (['key_ci'], {'key_eval': 1.5}, 50)
        >>> DetectorConfig.from_mapping({"allow_key": ["x"]})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown detector setting 'allow_key' (known: thresholds, min_events, critical_min_events, ...)
        """
        if not isinstance(overrides, dict):
            raise ValueError("detector overrides must be a mapping of setting -> value")
        fields: dict = {}
        for name, value in overrides.items():
            if name not in cls.OVERRIDABLE:
                raise ValueError(f"unknown detector setting {name!r} (known: {', '.join(cls.OVERRIDABLE)})")
            if name == "thresholds":
                if (not isinstance(value, (list, tuple)) or len(value) != 3
                        or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in value)
                        or not 0 < value[0] <= value[1] <= value[2] <= 1):
                    raise ValueError("thresholds: three increasing numbers in (0, 1] (info, warning, critical)")
                fields[name] = tuple(float(t) for t in value)
            elif name in ("min_events", "critical_min_events"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(f"{name}: a whole number of events, 1 or more")
                fields[name] = value
            elif name in ("allow_keys", "allow_accounts", "verified_tiers"):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError(f"{name}: a list of ids")
                fields[name] = frozenset(value)
            else:
                if not isinstance(value, dict) or not all(
                        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                        for k, v in value.items()):
                    raise ValueError(f"{name}: a mapping of id -> threshold scale (a number above 0; 2 = twice "
                                     "as hard to alert)")
                fields[name] = {k: float(v) for k, v in value.items()}
        return cls(**fields)


def population_baseline(population: PopulationProfile, reason: str) -> float:
    """The baseline an alert reason states: the population's median of its signal, rounded."""
    signal, prior = _POPULATION_BASELINES[reason]
    return round(population.baseline(signal, prior), 3)


def rebaseline(alert: dict, population: PopulationProfile) -> dict:
    """``alert`` (a key alert's dict) with the baselines of ``population``: for a process that
    learns the population of keys another process scored (``distillguard replay --jobs``).

    >>> alert = {"reasons": [{"signal": "topic_novelty", "baseline": 0.9}, {"signal": "x", "baseline": 7}]}
    >>> rebaseline(alert, PopulationProfile(_POPULATION_SIGNALS))["reasons"]
    [{'signal': 'topic_novelty', 'baseline': 0.5}, {'signal': 'x', 'baseline': 7}]
    """
    for reason in alert.get("reasons") or ():
        if reason.get("signal") in _POPULATION_BASELINES:
            reason["baseline"] = population_baseline(population, reason["signal"])
    return alert


class KeyPipeline:
    """Featurize, dedup, learn and score one key's event; open/escalate/close its incident."""

    detector = "distillguard.key/0.1"

    def __init__(self, config: DetectorConfig | None = None, fused: bool = True) -> None:
        """``fused``: learn through ``models.fused_signals`` (the default, ~2x faster) rather
        than through each detector's contract (the reference it is proven identical to)."""
        self.config = config or DetectorConfig()
        c = self.config
        # One detector of each kind, loaded with a key's state for each event (see _learn).
        self._style = ExtractionShare(c.alpha, _HARVEST_LO, _HARVEST_HI)
        self._follow_up = FollowUpShare(c.alpha)
        self._novelty = TopicNovelty(c.alpha, _RING)
        self._repetition = TemplateRepetition(c.alpha, _RING)
        self._budget = LargeOutputBudget(c.alpha)
        self._yield = OutputYield(c.alpha, _YIELD_TOKENS)
        self._evidence = ExtractionRateCUSUM(c.base_rate, c.campaign_rate, c.evidence_threshold, _HARVEST_LO,
                                             _HARVEST_HI)
        self._timing = InterArrivalTiming(c.alpha)
        # exculpatory evidence: caps an incident at info
        self._products = ProductEvidence(ProductEvidenceConfig(verified_tiers=c.verified_tiers,
                                                               sample_key=c.sample_key.encode()))
        self._claims = ConversationClaims(c.alpha, _CONVERSATIONS)
        self._length = AnswerLength(c.alpha)
        self._harvest_onset = HarvestOnset()
        self._prompt_length = PromptLength(c.alpha)
        self._reading = ReadingPace()
        # Each detector with the KeyState fields its state_fields are loaded from and stored
        # to, in learning order ("n": the key's event count; yield and answer length count
        # only the answers with usage). The reading pace and the conversation claim first (see
        # _learn_through_contract).
        self._bindings = (
            (self._reading, ("n", "reply_ready", "unread_ew")),
            (self._claims, ("n", "claims_share", "claims_n", "claims_broken", "conv_ids", "conv_marks",
                            "claim_kinds", "person_ew")),
            (self._length, ("answer_n", "answer_log")),
            (self._harvest_onset, ("n", "harvest_evidence", "harvest_start")),  # (after the claim check)
            (self._style, ("n", "style_ew")),
            (self._follow_up, ("n", "followup_ew")),
            (self._novelty, ("n", "novelty_ew", "sketch")),
            (self._repetition, ("n", "template_ew", "templates")),
            (self._budget, ("n", "bigout_ew")),
            (self._yield, ("yield_n", "yield_ew")),
            (self._evidence, ("n", "evidence")),
            (self._timing, ("n", "last_ts", "gap_mean", "gap_var")),
            (self._prompt_length, ("n", "prompt_log")),
        )
        self._fused = FusedSignals(*(detector for detector, _ in self._bindings)) if fused else None
        # What alert baselines say is normal: learned from the keys this process scores.
        self.population = PopulationProfile(_POPULATION_SIGNALS)

    def describe_state(self, data: bytes) -> dict:
        st = decode_state(data)
        return {"events": int(st.n), "score": round(float(st.score), 4),
                "alerting": bool(st.alerting), "incident": int(st.incident),
                "last_offset": int(st.last_offset), "bytes": len(data)}

    def step(self, state: bytes | None, event: RequestEvent, offset: int | None = None) -> StepResult:
        st = decode_state(state)
        result = self.step_decoded(st, event, offset)
        result.state = (state or encode_state(st)) if result.duplicate else encode_state(st)
        return result

    def step_decoded(self, st: KeyState, event: RequestEvent, offset: int | None = None) -> StepResult:
        """``step`` on a decoded state, updated in place (``models.step`` keeps a batch's
        key states decoded and packs each once); the result's ``state`` is left empty."""
        if offset is not None and offset <= st.last_offset:
            return StepResult(b"", None, None, duplicate=True)
        f = featurize(event)
        if f.event_hash in st.ids and st.n > 0:
            return StepResult(b"", None, None, duplicate=True)
        self._products.learn_one(st, event, f)
        score = self._learn(st, f)
        alert = self._incident(st, event, score)
        if offset is not None:
            st.last_offset = offset
        row = {
            "event_id": event.event_id, "ts_ms": event.ts_ms, "api_key_id": event.api_key_id,
            "account_id": event.account_id, "org_id": event.org_id or "", "model": event.model,
            "endpoint": event.endpoint or "", "asn": event.asn or 0, "country": event.country or "",
            "prompt_chars": f.prompt_chars, "input_tokens": event.input_tokens or 0,
            "output_tokens": event.output_tokens or 0, "status": event.status or 0,
            "latency_ms": event.latency_ms or 0, "score": float(score), "extraction_style": f.style,
            "topic_bucket": f.topic_bucket, "template_hash": f.template_hash,
            "alerting": int(st.alerting),
            "style_share": st.style_ew, "output_yield": st.yield_ew, "follow_up_share": st.followup_ew,
            "template_repetition": st.template_ew, "topic_novelty": st.novelty_ew,
            "extraction_evidence": st.evidence,
        }
        # A key whose app evidence is pending counts as a product's for its cluster too: the
        # cluster opens at info and escalates once a member's evidence fails (models.products).
        # So does a developer's coding agent: one CLI's users share its frame in lockstep.
        product = (ProductStatus.HOLDS if self._products.holds(st, event, st.template_ew)
                   or self._products.developer_agent(st, event)
                   else self._products.pending_status(st, event)
                   or (ProductStatus.EVALUATION_PENDING if self._evaluation_pending(st, event) else ProductStatus.NONE))
        return StepResult(b"", row, alert, features=f, key_events=int(st.n), product=product)

    # -- learning --------------------------------------------------------------------------
    def _learn(self, st: KeyState, f: EventFeatures) -> float:
        n = int(st.n)
        share_before, evidence_before = st.style_ew, st.evidence
        if self._fused is not None:
            self._fused.learn(st, f, n)
        else:
            self._learn_through_contract(st, f, n)
        if st.evidence > 0.0 and not evidence_before:
            # A run of evidence begins: its last zero is the CUSUM's estimate of when the key
            # began extracting (Page 1954). What the key was before it is its own past.
            st.run_ts, st.run_n, st.run_share = f.ts_ms, n, share_before
        if not n:
            st.first_ts = f.ts_ms
        if f.families:
            _count_signals(st.signals, f.families)
        st.ids[n % _RING] = f.event_hash
        bin_ = f.topic_bucket * _BINS // 256
        st.hist[bin_] = min(65535, st.hist[bin_] + 1)
        st.n = n + 1
        if n + 1 >= self.config.min_events and (n + 1) % _POPULATION_EVERY == 0:
            self.population.learn_one({name: getattr(st, name) for name in _POPULATION_SIGNALS})
        score = self._score(st)
        st.score = score
        return score

    def _learn_through_contract(self, st: KeyState, f: EventFeatures, n: int) -> None:
        """The reference path: each detector is loaded with the key's state, learns the event
        (scoring it against the key's past first) and hands its state back. The conversation
        claim first: a turn counts as conversation (which discounts extraction) only when the
        claim holds against what the key itself sent, and was not sent before the key's
        previous answer could be read (the reading pace's score, before it learns the event)."""
        x = signal_inputs(f)
        (reading, reading_fields), (claims, fields) = self._bindings[:2]
        self._load(reading, reading_fields, st, n)
        x["unread"] = reading.score_one(x) > 0.0
        x["clocked"] = on_a_clock(n, st.gap_var)  # (the key's pace before this event)
        self._load(claims, fields, st, n)
        x["prompt_tokens"] = claims.prompt_tokens(x)
        x["follow_up"] = claims.holds(x)
        for detector, fields in self._bindings:
            if detector is not claims and detector is not reading:
                self._load(detector, fields, st, n)
            detector.learn_one(x)
            for name, value in zip(fields, detector.get_state()):
                if name != "n":  # (the key's event count: advanced once, by _learn)
                    setattr(st, name, value)

    @staticmethod
    def _load(detector, fields: tuple[str, ...], st: KeyState, n: int) -> None:
        detector.set_state([n if name == "n" else getattr(st, name) for name in fields])

    def _score(self, st: KeyState) -> float:
        # The evidence test scores 0.5 (the default info level) at its threshold, 1.0 at its cap.
        return float(max(0.0, min(1.0, max(self._share_score(st), self._evidence_score(st),
                                           self._harvest_score(st)))))

    def _harvest_score(self, st: KeyState) -> float:
        """How much the key harvests without wording: its answers (``_output_harvest``) or tool-use
        traces (``_tool_use_harvest``), whichever says more."""
        if st.n < _HARVEST_MIN_EVENTS:
            return 0.0
        return max(self._output_harvest(st), self._tool_use_harvest(st))

    def _tool_use_harvest(self, st: KeyState) -> float:
        """How much the key is a harvest of tool-use traces: agent loops (``agent_ew``) fed with
        tool output rather than a person's turns (``person_ew``), opening tasks faster than a
        developer (``_TOOL_USE_TASKS``). At most ``_TOOL_USE_CAP`` (info).

        >>> from types import SimpleNamespace
        >>> key = SimpleNamespace(agent_ew=0.6, person_ew=0.0, convs=40.0, first_ts=0.0, last_ts=6 * 3_600_000.0)
        >>> KeyPipeline()._tool_use_harvest(key)
        0.6
        >>> key.convs = 7.0  # a developer's few tasks
        >>> KeyPipeline()._tool_use_harvest(key)
        0.0
        """
        if st.agent_ew <= _TOOL_USE_STEPS[0] or st.person_ew >= 1.0 - _TOOL_USE_PERSON[0]:
            return 0.0
        tasks = self._products.tasks_per_window(st, st.last_ts)
        return _TOOL_USE_CAP * min(_ramp(st.agent_ew, *_TOOL_USE_STEPS), _ramp(1.0 - st.person_ew, *_TOOL_USE_PERSON),
                                   _ramp(tasks, *_TOOL_USE_TASKS))

    def _output_harvest(self, st: KeyState) -> float:
        """A harvest needs no extraction wording: a key that is automated (requests on a
        clock), broad (new content, no fixed frame), collects long answers and does not
        converse is harvesting outputs, whatever its prompts say. Each is necessary: the
        weakest scores. A key whose conversation claims do not hold is disguising its sweep:
        that stands in for long answers; so, at most info, do a strict clock and a hundred
        events for chat-length answers (``_clocked_run``). At most ``_HARVEST_CAP``: no wording
        to show a human, so it raises info or warning, never a page at critical on its own."""
        if st.n < _HARVEST_MIN_EVENTS:
            return 0.0
        # the cheap conditions first: most keys fail one of them
        weakest = _ramp(1.0 - st.followup_ew, *_HARVEST_ONE_SHOT)
        if weakest <= 0.0:
            return 0.0
        content, kind = self._harvest_content(st)
        weakest = min(weakest, content)
        if weakest <= 0.0:
            return 0.0
        answers = long_answers = self._long_answers(st)
        clocked = 0.0
        if kind == "new_items":
            answers = max(answers, _ramp(st.claims_share, *_HARVEST_DISGUISE), self._bare_items(st))
            if answers < 1.0:
                clocked = _PACED_CAP * min(weakest, self._clocked_run(st))
        elif answers > 0.0:
            # Resending the same prompts harvests only when each answer is a long sample (a
            # reasoning model's worked solution): with a few hundred tokens, or in disguise, it
            # is what templated jobs and test suites do.
            answers = _ramp(st.answer_log, *_RESAMPLED_ANSWER_LOG)
        weakest = min(weakest, answers)
        if weakest <= 0.0:
            return clocked
        scripted = _HARVEST_CAP * min(weakest, self._automated(st, long_answers))
        if kind != "new_items" or scripted >= _PACED_CAP:
            return scripted
        return max(scripted, clocked, _PACED_CAP * min(weakest, self._paced_run(st)))

    @staticmethod
    def _automated(st: KeyState, long_answers: float) -> float:
        """How much the key is a script: requests on a clock (``_HARVEST_REGULARITY``), or sent
        before its answers could be read (``ReadingPace``, ``_HARVEST_UNREAD``) as far as those
        answers are long (``long_answers``: ``_long_answers``' level), whichever says more. A script that jitters its
        gaps to a person's spread still collects its long answers faster than anyone reads
        them. Chat-length answers take a reader a second or two: a developer's job sending terse
        prompts for 300-400-token answers unread (bare items by their expansion) is no more a
        harvest for it (stress-content-cohort-b's power user: named at info without the bound)."""
        return max(_ramp(regularity(st.gap_var), *_HARVEST_REGULARITY),
                   min(_ramp(st.unread_ew, *_HARVEST_UNREAD), long_answers))

    @staticmethod
    def _clocked_run(st: KeyState) -> float:
        """How much the key is a script collecting chat-length answers: a strict clock, a
        hundred events and more, answers of a few hundred tokens (``_CLOCKED_*``)."""
        if st.answer_n < _HARVEST_MIN_ANSWERS:
            return 0.0
        return min(_ramp(regularity(st.gap_var), *_CLOCKED_REGULARITY), _ramp(st.n, *_CLOCKED_RUN),
                   _ramp(st.answer_log, *_CLOCKED_ANSWER_LOG))

    @staticmethod
    def _paced_run(st: KeyState) -> float:
        """How much the key's current run of long answers is a harvest without a clock: its
        length at full evidence (``_PACED_RUN`` events since the run's last zero) and answers
        many times the prompts (``_PACED_EXPANSION``)."""
        if st.harvest_evidence <= _PACED_EVIDENCE[0] or not st.prompt_log:
            return 0.0
        return min(_ramp(st.harvest_evidence, *_PACED_EVIDENCE), _ramp(_long_answer_run(st), *_PACED_RUN),
                   _ramp(st.answer_log - st.prompt_log, *_PACED_EXPANSION))

    @staticmethod
    def _harvest_content(st: KeyState) -> tuple[float, str]:
        """How much the key's content is a harvest's, and which kind: ``new_items`` (breadth:
        new content, no fixed frame) or ``items_resampled`` (the same prompts again)."""
        breadth = _ramp(st.novelty_ew * (1.0 - st.template_ew), *_HARVEST_BREADTH)
        resampling = _ramp(1.0 - st.novelty_ew, *_HARVEST_RESAMPLING)
        return (breadth, "new_items") if breadth >= resampling else (resampling, "items_resampled")

    @staticmethod
    def _bare_items(st: KeyState) -> float:
        """How much the key's answers are a bare item's harvest: many times its prompts' length
        (``PromptLength``: terse prompts), in a sustained run of answers over ordinary length.
        Stands in for long answers."""
        if st.answer_n < _HARVEST_MIN_ANSWERS or not st.prompt_log:
            return 0.0
        return min(_ramp(st.answer_log - st.prompt_log, *_HARVEST_EXPANSION),
                   _ramp(st.harvest_evidence, *_BARE_ITEMS_RUN))

    def _long_answers(self, st: KeyState) -> float:
        if st.answer_n < _HARVEST_MIN_ANSWERS:
            return 0.0
        return self._length.set_state((st.answer_n, st.answer_log)).level

    def _evidence_score(self, st: KeyState) -> float:
        return st.evidence / (2.0 * self.config.evidence_threshold)

    def _share_score(self, st: KeyState) -> float:
        style = st.style_ew
        breadth = st.novelty_ew * (1.0 - st.template_ew)
        conversational = st.followup_ew
        # Extraction-style prompts are necessary; follow-up conversations discount them;
        # breadth (novel content, not one repeated frame) and a very large output budget add
        # to them. Temperature 0 is not evidence: every evaluation harness sends it.
        raw = style * (1.0 - 0.9 * conversational)
        raw *= 0.75 + 0.25 * breadth + 0.075 * st.bigout_ew
        raw *= self._harvest_factor(st)
        return raw

    @staticmethod
    def _harvest_factor(st: KeyState) -> float:
        """Distillation collects the model's *outputs*: a key whose answers are short (a
        final-answer eval, a classifier) harvests little teacher signal however its prompts
        read. Full weight from a mean yield of 0.5 (about 250+ output tokens); unknown when
        usage is not reported, then neutral."""
        if st.yield_n < 5:
            return 1.0
        return 0.3 + 0.7 * min(1.0, st.yield_ew / 0.5)

    def _reasons(self, st: KeyState) -> list[dict]:
        # baselines: the population's median of each signal (learned from the keys scored here),
        # the built-in prior until enough keys were seen
        base = functools.partial(population_baseline, self.population)
        reasons = [
            {"signal": "extraction_style_share", "value": round(float(st.style_ew), 3),
             "baseline": base("extraction_style_share"), "weight": 1.6},
            {"signal": "topic_novelty", "value": round(float(st.novelty_ew), 3),
             "baseline": base("topic_novelty"), "weight": 0.6},
            {"signal": "template_repetition", "value": round(float(st.template_ew), 3),
             "baseline": base("template_repetition"), "weight": -0.6},
            {"signal": "follow_up_share", "value": round(float(st.followup_ew), 3),
             "baseline": base("follow_up_share"), "weight": -0.8},
            {"signal": "output_yield", "value": round(float(st.yield_ew), 3),
             "baseline": base("output_yield"), "weight": 0.7},
            {"signal": "topic_buckets_seen", "value": sum(1 for c in st.hist if c), "baseline": None, "weight": None},
            # a script fires on a clock, people in sessions (scored only in the harvest score)
            {"signal": "typical_gap_seconds", "value": round(math.exp(st.gap_mean), 1), "baseline": None,
             "weight": None},
            {"signal": "timing_regularity", "value": round(regularity(st.gap_var), 3),
             "baseline": None, "weight": None},
        ]
        reasons.sort(key=lambda r: -abs((r["weight"] or 0) * (r["value"] or 0)))
        signals = self._signal_reasons(st)
        if signals:  # what the style share is made of, next to it
            at = next(i for i, r in enumerate(reasons) if r["signal"] == "extraction_style_share") + 1
            reasons[at:at] = signals
        reasons = self._claim_reasons(st) + reasons
        harvest = self._harvest_score(st)
        wordless = harvest > self._share_score(st) and harvest >= self._evidence_score(st)
        if wordless and self._tool_use_harvest(st) > self._output_harvest(st):
            reasons = self._tool_use_reasons(st, harvest, reasons)
        elif wordless:
            # what made the score: no wording, so say what the key does instead
            reasons = [{"signal": "harvest_without_wording", "value": round(harvest, 3),
                        "baseline": self.config.thresholds[0], "weight": None},
                       {"signal": "harvest_content", "value": self._harvest_content(st)[1], "baseline": None,
                        "weight": None},
                       {"signal": "typical_answer_tokens",
                        "value": round(math.exp(st.answer_log)) if st.answer_n else 0,
                        "baseline": self._length.ordinary_tokens, "weight": None},
                       # bare items: a dozen tokens in, a chat-length answer out
                       {"signal": "typical_prompt_tokens",
                        "value": round(math.exp(st.prompt_log) - 1.0) if st.prompt_log else 0,
                        "baseline": self._prompt_length.context_tokens, "weight": None},
                       # answers over ordinary length in a row (by the sequential test): what a
                       # harvest at a person's pace is judged by (timing_regularity says the pace)
                       {"signal": "long_answer_run",
                        "value": _long_answer_run(st),
                        "baseline": int(_PACED_RUN[0]), "weight": None},
                       # requests sent before the previous answer could be read: a script,
                       # whatever its timing's regularity (ReadingPace)
                       {"signal": "sent_before_answer_read_share", "value": round(float(st.unread_ew), 3),
                        "baseline": _HARVEST_UNREAD[0], "weight": None}] + reasons
        # Sustained evidence that this key's harvested extraction rate is a campaign's, not the
        # population's (log-likelihood ratio; baseline = the level that opens an incident).
        # Leads the list when the share alone would not have reached the info level.
        evidence = {"signal": "extraction_rate_evidence", "value": round(float(st.evidence), 2),
                    "baseline": self.config.evidence_threshold, "weight": None}
        share = self._share_score(st)
        leads = share < self.config.thresholds[0] and self._evidence_score(st) > share
        reasons = [evidence] + reasons if leads else reasons + [evidence]
        onset = self._onset(st)
        if onset is not None:
            # Against the key's own past: since when it extracts, and what it was before. Third,
            # so that notifications that show the first few reasons carry it.
            reasons.insert(2, {"signal": "key_history", "value": self.key_history(st), "baseline": None,
                               "weight": None})
            before, run = onset
            if run == "extraction":
                reasons.append({"signal": "extraction_since", "value": _iso(int(st.run_ts)), "baseline": None,
                                "weight": None})
            reasons.append({"signal": "events_before_extraction", "value": before, "baseline": None, "weight": None})
            if run == "extraction":
                reasons.append({"signal": "extraction_style_share_before", "value": round(float(st.run_share), 3),
                                "baseline": BASE_EXTRACTION_RATE, "weight": None})
        return reasons

    def _tool_use_reasons(self, st: KeyState, harvest: float, reasons: list[dict]) -> list[dict]:
        """What made a tool-use harvest's score (``_tool_use_harvest``) first: the agent loops, the
        rate of tasks and the person share (moved up from the claim reasons), then ``reasons``."""
        tasks = self._products.tasks_per_window(st, st.last_ts)
        return [{"signal": "harvest_without_wording", "value": round(harvest, 3),
                 "baseline": self.config.thresholds[0], "weight": None},
                {"signal": "harvest_content", "value": "tool_use_tasks", "baseline": None, "weight": None},
                {"signal": "tasks_per_window", "value": round(tasks, 2), "baseline": _TOOL_USE_TASKS[0],
                 "weight": None},
                {"signal": "brief_answered_turn_share", "value": round(float(st.agent_ew), 3),
                 "baseline": _TOOL_USE_STEPS[0], "weight": None},
                {"signal": "conversations_opened", "value": int(st.convs), "baseline": None, "weight": None},
                {"signal": "follow_ups_a_persons_share", "value": round(float(st.person_ew), 3),
                 "baseline": round(1.0 - _TOOL_USE_PERSON[0], 3), "weight": None},
                ] + [r for r in reasons if r["signal"] != "follow_ups_a_persons_share"]

    def _onset(self, st: KeyState) -> tuple[int, str] | None:
        """The key's events before its current run, and the run's kind: ``extraction`` (the
        evidence test's run) or ``harvest`` (long answers, while the key meets the harvest
        conditions); the earlier when both run (a harvest whose wording came later began
        with its long answers). None outside any run."""
        runs = []
        if st.evidence > 0.0:
            runs.append((int(st.run_n), "extraction"))
        # (HarvestOnset dates a run of long answers: a harvest of bare items for chat-length
        # answers walks it up and down, and its last zero is no onset)
        if st.harvest_evidence > 0.0 and self._output_harvest(st) > 0.0 and \
                self._long_answers(st) >= self._bare_items(st):
            runs.append((int(st.harvest_start), "harvest"))
        return min(runs) if runs else None

    @staticmethod
    def _signal_reasons(st: KeyState) -> list[dict]:
        """Which extraction signals the key's events fired, most frequent first, as
        ``extraction_signals`` ("other_language_cue 412, reasoning_elicitation 412,
        item_structure 30"): the English phrase rules, the reworded cues, or the
        language-independent ones (a cue phrase of another language, named in
        ``cue_language``; an exam item's shape in any script)."""
        # most frequent first; on a tie the more specific signal (later in EXTRACTION_SIGNALS:
        # a cue's language or an item's shape says more than the family it sets)
        counts = sorted(((count, i) for i, count in enumerate(st.signals[:-1]) if count), reverse=True)
        if not counts:
            return []
        reasons = [{"signal": "extraction_signals",
                    "value": ", ".join(f"{EXTRACTION_SIGNALS[i]} {count}" for count, i in counts),
                    "baseline": None, "weight": None}]
        language = int(st.signals[-1])
        if language:
            reasons.append({"signal": "cue_language", "value": LANGUAGES[language - 1], "baseline": None,
                            "weight": None})
        return reasons

    def _claim_reasons(self, st: KeyState) -> list[dict]:
        """The key's follow-up claims that did not hold, and why: a sweep dressed up as
        conversation (turns of conversations the key never opened, turns that go back or
        skip ahead, follow-ups that do not resend the history). And, for a key with held
        follow-ups, when they are seldom a person's (``person_ew`` under the bar): its new items
        sent as turns did not count as conversation (a sweep inside conversations it opened)."""
        reasons = []
        if st.claims_n - st.claims_broken >= _PERSON_REASON_MIN_HELD and st.person_ew < self._claims.person_share:
            reasons.append({"signal": "follow_ups_a_persons_share", "value": round(float(st.person_ew), 3),
                            "baseline": self._claims.person_share, "weight": None})
        if not st.claims_broken:
            return reasons
        why = ", ".join(f"{name} {count}" for name, count in zip(CLAIM_KINDS, st.claim_kinds) if count)
        return [{"signal": "conversation_claims_inconsistent", "value": int(st.claims_broken),
                 "baseline": int(st.claims_n), "weight": None},
                {"signal": "conversation_claims_broken_by", "value": why, "baseline": None, "weight": None}] + reasons

    def key_history(self, st: KeyState) -> str:
        """What the key was before its current run of extraction evidence: ``turned`` (an
        ordinary history of ``TURNED_AFTER`` or more events first: a compromised, sold or
        repurposed key, or a cover built up), ``recurring`` (a history that already read like
        extraction) or ``from_first_events`` (an account set up for this). A harvest's run
        (``_onset``) counts when it began first: its past is ``turned`` or ``from_first_events``."""
        before, run = self._onset(st) or (int(st.run_n), "extraction")
        if before < TURNED_AFTER:
            return "from_first_events"
        if run == "harvest":
            return "turned"
        return "turned" if st.run_share < _ORDINARY_SHARE else "recurring"

    def _evaluation_pending(self, st: KeyState, event: RequestEvent) -> bool:
        """``ProductEvidence.evaluation_pending`` for a key with no past before its extraction
        (a verified key that turns is judged as it is)."""
        return self._products.evaluation_pending(st, event) and self.key_history(st) != "turned"

    # -- incidents ---------------------------------------------------------------------------
    def _thresholds(self, event: RequestEvent) -> tuple[float, ...]:
        if not (self.config.key_threshold_scale or self.config.account_threshold_scale):
            return self.config.thresholds  # (no overrides: every key's scale is 1)
        scale = self.config.key_threshold_scale.get(event.api_key_id,
                                                    self.config.account_threshold_scale.get(event.account_id, 1.0))
        return tuple(t * scale for t in self.config.thresholds)

    def _min_events(self, critical: bool, event: RequestEvent) -> int:
        """The events a key needs before its incident opens: ``min_events``, or
        ``critical_min_events`` at the critical level on an account no product evidence can
        excuse (young, or of unknown age)."""
        cfg = self.config
        if critical and not self._products.mature_account(event):
            return min(cfg.critical_min_events, cfg.min_events)
        return cfg.min_events

    def _incident(self, st: KeyState, event: RequestEvent, score: float) -> dict | None:
        cfg = self.config
        if event.api_key_id in cfg.allow_keys or event.account_id in cfg.allow_accounts:
            return None
        thresholds = self._thresholds(event)
        level = sum(score >= t for t in thresholds)  # 0 = below info
        # A real product's traffic (models.products) caps the incident at info, never clears it;
        # an info alert names the evidence too, so on-call knows why it will not escalate.
        exculpatory = self._products.exculpation(st, event, st.template_ew) if level else []
        held = False  # a developer's agent held at info (an exculpated detection) at its usual pace
        if exculpatory:
            level = 1
        elif level and not st.alerting and self._products.pending(st, event):
            # an app's evidence still counting its conversations: the incident waits until it
            # can be judged (a bounded wait, models.products), not opened to be capped later
            return None
        elif level and (unverified := self._products.unverified_product(st, event, st.template_ew)):
            # a product's evidence on an individual's account: at info, sent, never a page
            # (a product serving end users is a business's; models.products)
            level = 1
            exculpatory = self._products.unverified_product_reasons(st, event, unverified, st.template_ew)
        elif level and self._products.developer_agent(st, event):
            # a developer's coding agent on a young or personal account (models.products): at
            # info, never a page; recorded, not sent, at a developer's usual few tasks, sent over
            # them; escalated when its tasks come at a harvest's rate
            level = 1
            held = self._products.developer_agent_held(st, event)
            exculpatory = self._products.developer_agent_reasons(st, event, held)
        elif level > 1 and self._evaluation_pending(st, event):
            # maybe an evaluation whose re-run has not come yet: opened at info (sent, never a
            # page), saying so, and escalated when the wait ends without the re-run (models.products)
            level = 1
            exculpatory = self._products.evaluation_pending_reasons(st, event)
        elif level > 1 and self._products.graded(st, event):
            # a grader's batches (or its first ones): at info, sent, never a page; escalated when
            # its questions stop retiring (models.products). Not asked whether the key turned: a
            # grader whose first batch read weakly as grading (a plain "evaluate this submission"
            # frame) gathers its extraction evidence after 20+ events, and reads as turned
            level = 1
            exculpatory = self._products.graded_reasons(st, event)
        # An incident opened before min_events (critical_min_events) stays at warning until then:
        # a hydra's heads would each page at critical beside their campaign's cluster page
        # (dev-s1: 163 heads); a head that goes on is paged at min_events as any key.
        ceiling = len(thresholds) - 1 if st.n < cfg.min_events else len(thresholds)
        # The incident's rank: its level, or half of info while a developer's agent is held there,
        # so that the same incident is sent at info once its tasks come faster than that
        rank = _HELD_INFO if held else level
        if st.alerting:
            if score < cfg.close_ratio * thresholds[0]:
                st.quiet += 1
                if st.quiet >= cfg.close_after:
                    st.alerting = 0
                    st.severity = 0
                return None
            st.quiet = 0
            if min(rank, ceiling) <= st.severity:
                return None
        elif level == 0 or st.n < self._min_events(level == len(thresholds), event):
            return None
        else:
            st.incident += 1
            st.alerting = 1
            st.quiet = 0
        early = []
        if level > ceiling:
            level = ceiling
            early = [{"signal": "opened_before_min_events", "value": int(st.n), "baseline": cfg.min_events,
                      "weight": None}]
        st.severity = min(rank, level)
        return Alert(
            alert_id=f"key:{event.api_key_id}:{int(st.incident)}",
            ts=_iso(event.ts_ms),
            entity_type="key",
            entity_id=event.api_key_id,
            api_key_ids=[event.api_key_id],
            score=round(score, 4),
            severity=Severity.of_rank(level),
            reasons=early + exculpatory + self._reasons(st),
            events_seen=int(st.n),
            detector=self.detector,
        ).to_dict()
