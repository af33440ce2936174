"""Exculpatory evidence: what a real product's traffic has that a sweep's does not.

Some products look like extraction by their prompts: a homework app wraps every student's
question in "explain step by step"; a translation or summarisation service sends one fixed
frame around long material and gets long answers back. Their *traffic* differs from a
sweep's in ways that are expensive to fake, and that is what this module measures, per key:

``app_conversations``
    Many conversations the key itself opened, continued by short user turns at a person's
    pace: the follow-up names a conversation this key opened (turn 0) recently, arrives
    ``human_gap_s`` after that conversation's previous turn, and is short. A conversation id
    and a turn index are claims a client sets for free; a stream in which a large share of
    all requests are such follow-ups, over dozens of conversations, is not: every one of
    them is a request spent on "why?" instead of a new item. It holds (an exculpated
    detection, recorded, not sent) only on an organisation's account: a product serving end
    users is a business's. On an individual's account the same conversations cap the incident
    at info and the alert is sent (``unverified_product``): a sweep dressed as a tutoring app, each
    item its own conversation and a "why?" after a share of them (a long answer harvested
    too), pays nothing for the follow-ups, and bought aged accounts of individuals are what a
    hydra is made of (stress stream app-mimic: held silently, 11 of its 38 heads unnamed).
    What it still gives away, stated: the same on a bought aged *organisation's* account is
    held at info, unsent.
``templated_transformation``
    One fixed frame around material the model transforms (translation, summarisation,
    rewriting): the answer is about the size of the input or smaller. A harvest asks short
    questions for long answers; the output/input token ratio (both gateway-measured) is
    what separates them, whatever the words. The input counted is the prompt's share of it: a
    long fixed system prompt is no material (padded around short items, it made any harvest's
    answers "smaller than the input"). The material is new each time (a sketch of all the
    prompt's words far from the key's last transformations': the same worked examples pasted
    into every item's prompt, in any order, are not), and it is material, not items: when most
    of the key's transformations carry an answer label or an item's shape (options, "Answer:"
    in any language) the key is answering items. Like the app evidence it holds only on an
    organisation's account; on an individual's the incident is capped at info and sent
    (``unverified_product``). Long-context harvests under one frame (a passage and a question,
    ``max_tokens`` kept under the ratio), or items padded by worked examples inside every
    prompt, on bought aged accounts were held silently (stress stream transformation-mimic), on
    organisations' accounts too until the material had to be new and no item. What it still
    gives away, stated: a long-context harvest on a bought aged organisation's account whose
    prompts carry no answer label and no item's shape (a passage and a bare question), answered
    under the ratio, is held at info, unsent, where it raises an incident at all (most such
    heads of stress stream transformation-mimic-b raise none: document QA by every signal).
``agent_loops``
    A coding or tool-using agent: many of the key's requests continue a conversation the key
    opened (a tool's result sent back as the next turn, history and all), with tools declared,
    and are answered briefly (a tool call: the share weighs each such turn by how little its
    gateway-measured answer harvests, 1 under ``HARVEST_LO_TOKENS`` output tokens, 0 from
    ``HARVEST_HI_TOKENS``). Its follow-ups are no person's (long tool output, sent as soon as
    the tool ran, many content words), so the conversation claims count them as new items, and
    a system prompt that says "work step by step" made every such key a critical harvest (stress
    stream product-negatives-f: 11 of 11 agent keys paged). A harvest wants long answers: one
    that keeps ``agent_step_share`` of its requests to brief answers inside its own
    conversations pays for that many requests that harvest little; the declared tools are a
    claim that costs nothing and only narrows the evidence to agents' traffic. An agent's share
    swings with its work (a run of long code edits, a new task's first turns: 0.3-0.9 on
    product-negatives-f), so the evidence, once held, is let go only under
    ``agent_release_share`` (a key that turns to one-shot items drops under it within about 20
    events); sweeps dressed as conversations stayed at 0.37 or under (fabricated-conversations-b,
    -c, -d, -e, even with their tools claimed). Only an organisation's account earns it (an
    agent product is a business's), 30+ days old as for the others.

    What it gives away, stated: an attacker who distils tool use itself (the tool calls an
    agent makes, short answers by nature) by running agent loops with tools declared, on bought
    aged organisation accounts, is capped at info (recorded, not sent), also when its system
    prompt asks for step-by-step work; the same traces without such wording were never named
    by the per-key signals, whose harvest is long answers. Young accounts and accounts of no
    organisation are not excused. A cluster such heads share with others still pages for the
    others, but leaves the heads that show the evidence unnamed
    (``exculpation.excused_products``), as it does the real agents linked to it.

    A *developer's* agent on a young or personal account (``developer_agent``: the same
    evidence, tasks opened at a developer's rate, ``developer_max_tasks`` a
    ``developer_task_window_hours`` on average) is not excused either: its incident is capped
    at info and *sent* (``unverified_agent_loops``), or recorded and not sent at a developer's
    usual pace (``developer_held_tasks``), and its link records count as a product's
    (pending before its evidence holds), so its cluster opens at info. A coding CLI's launch
    (stress stream agent-newcomers: 60 developers on new personal keys, the CLI's system prompt
    asking for step-by-step work) had 24 and 17 of them paged at critical by their own
    incidents on two draws, and 36 on one by the cluster linking their CLI's frame. What it
    gives away, stated: a tool-use harvest that keeps each head to a developer's few tasks is
    named at info, not paged, by these two paths (under ``developer_held_tasks``, recorded, not
    named), and needs several times the accounts for the same traces.
``evaluation_reruns``
    One item set re-run on another model or another day (``models.reruns``), from a
    *verified* account: ``eval_min_account_age_days`` old, an organisation, a tier that takes a
    payment history (``verified_tiers``). A harvest sends each item once.

Each holds only on an account older than ``min_account_age_days`` (``account.created_at``
comes from the provider's account records, not from the client; an evaluation's, a verified one). It never clears a key:
it caps the key's incident at ``info``, with the evidence as the alert's first reasons.
Maturity is no free pass: the evidence is a recent-window share, so a key that turns (sweeps
without the conversations, or without the material) loses it within a few dozen events and
its incident escalates as before (``key_history: turned``).

``pending``: an app's conversations take time to count. A homework app whose students ask
"why?" after every second question has opened 15-20 conversations by a key's 50th event, when
the key's incident may open; its cluster (apps on one tutoring template link by their frame)
opens after a few events per key. A key on a mature account whose follow-ups are a person's
and already half the app's share, but that has not yet opened ``app_min_conversations``
conversations, is *pending*: its own
incident waits until the evidence can be judged (the 20th conversation; judged short of the
app's share there but over half of it, until the share holds or its
``app_pending_max_events``-th event), and its link record counts as a product's, so a cluster
of such keys opens at info and escalates as soon as one member's evidence fails. A sweep
asks no follow-ups (pending never holds); one that fakes them at a person's pace in a
person's words is what the evidence itself accepts, and pending only delays its judgment.
An organisation's new key each of whose first requests opened a conversation of its own is
pending too, until its ``app_opening_events``-th event: an app's first users, before any of
them could reply. What that gives away, stated: a head on a mature organisation's account
that opens a conversation per request is not named by its cluster over its first 9 requests.

``graded_batches``: a grading product (an auto-marker for schools, a reviewer of support
answers) sends one frame, one question and its rubric around each submission of a batch, a
class at once at machine rate, then the next question (``models.batches``). Its prompts carry
every grading word a rubric harvest carries ("grade", "rubric", "marks out of 10"), and on an
organisation's account 30+ days old such a key whose recent one-shot requests mostly
(``batch_share``) repeat a recurring line of its own, answered with verdicts (typical answer at
most ``batch_max_answer_tokens``: worked solutions and reasoning run to 600-3,000), has its
incident capped at info, with the reason (``graded_batches``: questions retired so far), while
it retires questions (``batch_min_batches`` of them, the last within the key's last 300
events) or before its ``batch_pending_max_events``-th event (its first batches). The info alert
is *sent*, not held as an exculpated detection: a sweep through a benchmark in subject order
has the same structure (each subject's header line recurs, then retires), and a harvest of
chain-of-thought items with verdict-sized answers on bought aged organisation accounts held
silently went unnamed (stress stream evaluation-mimic: 1 and 3 heads on two draws). What it
gives away, stated: such an attacker is named at info, not paged, for 400 requests, and for as
long as it retires a recurring line every few dozen to 300 requests; a sweep of distinct items
under one frame retires nothing and pages by its 400th event (its frame line, once 300 events
old, no longer counts).

``evaluation_pending``: an evaluation's first run is, by its traffic, a sweep (chain-of-thought
items at machine rate), and its re-run comes after it: one item set later, often days later.
A key of a verified account that sends at temperature 0 (a harness's setting) and has no past
before its extraction (``key_history`` is not ``turned``, checked by ``models.pipeline``) has
its incident capped at info, with the reason (``evaluation_pending``), until its items are
re-run (the evidence: it stays at info) or until its ``eval_pending_max_events``-th event (it
escalates to what its score says). The info alert is *sent*, not held as an exculpated
detection: until the re-run the traffic is a harvest's, and a harvest dressed as an evaluation
on bought verified accounts (the ``evaluation-mimic`` stress stream) held silently kept 22 of
its 27 heads unnamed. The cost, stated: such an attacker gets that many requests at info
before a page; it must also re-run its whole set to keep the cap, since the sample is keyed
(``models.reruns``).

State per key: five scalars and a ring of recent conversations (id hash, last turn time),
and the re-run sample (two scalars, 8 + 8 uint32), held in the key's fixed-layout record by
``models.pipeline``. Pure, no I/O.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from .constants import DAY_MS, HARVEST_HI_TOKENS, HARVEST_LO_TOKENS, ProductStatus
from .detectors.base import harvested_share
from .detectors.topic_novelty import sketch_novelty
from .batches import GradedBatches, line_marks
from .events import RequestEvent
from .features import BENCHMARK_FORMAT, EventFeatures, material_sketch
from .multilingual import ITEM_STRUCTURE
from .reruns import ItemReruns, item_fingerprint

#: recent conversations a key's record keeps (id hash + last turn time, 8 bytes each)
CONVERSATION_RING = 8
#: material sketches of a key's last transformations its record keeps (uint64 each)
MATERIAL_RING = 4
# A prompt that poses an item: an answer label ("Answer:", "答案：", "final answer") or an item's
# structure (options, a numbered question), in any language (features, multilingual).
_ITEM_SHAPE = BENCHMARK_FORMAT | ITEM_STRUCTURE


@dataclass(frozen=True)
class ProductEvidenceConfig:
    """When traffic counts as a real product's. Defaults, and why:

    - ``alpha`` 0.05: a window of about 20-40 events, so a key that turns loses the evidence
      within a few dozen events of turning (the key signals use 0.03), while a real app's
      share does not dip under the bar by chance.
    - ``human_gap_s`` (5, 1800): a person reads the answer before replying (a script replies
      at once) and a conversation idle for over half an hour is a new visit.
    - ``short_turn_chars`` 300: a user's follow-up ("why?", "and for b)?"), not a new item.
    - ``app_follow_up_share`` 0.2: share of all the key's recent events that are such
      follow-ups, read without the first event's weight (``follow_up_share``). A homework app
      with follow-ups on about half its questions: 0.4-0.6; keys that turned to a sweep,
      product-negatives stress stream: 0.05 or less when they alert.
    - ``app_release_share`` 0.1: once held, the app evidence is let go only under half the app's
      bar. The share is a mean over about 20-40 events and swings with an app's users: a quiz
      maker whose teachers ask for changes after a fifth of their quizzes ("make them harder")
      held at 0.2-0.46 and dipped under 0.2 now and then, and each dip let its incident escalate
      to a page that never came down (stress stream product-negatives-h: every such key paged
      at critical). A key that turns to a sweep asks no follow-ups: its share falls from 0.3
      under 0.1 within about 22 events.
    - ``app_memory_alpha`` 0.02 / ``app_memory_cap`` 0.4 / ``app_memory_share`` 0.1: the app's
      long-run follow-up share (a window of about 100 events, capped) keeps the evidence through a
      quiet spell: the release needs it under the release bar too, the same bar over a longer
      window. A quiz maker's teachers batch-write quizzes for an hour without asking for a change
      (runs of up to 35 requests with no follow-up over a long-run share of 0.3): the short-run
      share fell under its release bar mid-spell and the key was paged at critical (stress stream
      product-negatives-h +1000 and +2000: 3 keys; with a long-run bar of 0.15, one of them still).
      A key that turns to a sweep sends no follow-up again: of the product-negatives streams' 47
      turned mature keys that had held it, 30 lost the evidence at the same event as before, the
      others 1-28 events later (simulated on the streams). The cap bounds what a history bought
      with follow-ups is worth: from 0.4 the long-run share falls under 0.1 within 70 events of the
      last follow-up. What it gives away, stated: a sweep dressed as a tutoring app on an
      organisation's account whose share dips under the bar by chance is no longer released and
      paged by the dip (app-mimic: 3 heads of 38 on its first draw; product-negatives-j: 2 of 33,
      one a whole campaign, and 1 of 41 on +1000); an attacker that keeps its share over the bar
      was never released.
    - ``app_min_conversations`` 20: conversations the key opened before the evidence counts
      (an app reaches the 50 events a key needs to alert with 20-30).
    - ``app_min_person_share`` 0.15: the key's follow-ups are often a person's (a few
      words: ``ConversationClaims.person``, the key state's ``person_ew``). A follow-up of 300
      characters is also a whole new item: a sweep that opens its conversations itself and
      sends its next plain instruction as each turn, at a person's pace, had consistent
      follow-up shares of 0.3-0.8 and was capped at info as an app
      (stress-fabricated-conversations-c). Its follow-ups are never a person's (0.0-0.02); a
      homework app's students, pasting their next question as well as asking "why?", 0.2-0.8.
    - ``app_release_person_share`` 0.075: once the evidence holds, it is released when the
      person share falls under half its bar, as the follow-up share's ``app_release_share`` is
      half of ``app_follow_up_share``. The share is a moving mean (weight 0.1) of whether each
      follow-up has at most 3 content words. When the words were counted with English stop
      words only, a Vietnamese app's students ("mình không hiểu bước hai", "tại sao?") wrote
      that few in about half their follow-ups, and a key at 0.28-0.74 over 1,000 events dipped
      under 0.15 once and was paged at critical (stress stream product-negatives-j, +1000 draw);
      they are counted alike in every language now (``multilingual.turn_words``). Sweeps that
      send items as turns stay at 0.0-0.02.
    - ``transform_min_input_tokens`` 150 / ``transform_max_ratio`` 2.5: material pasted for
      transformation, answered at most 2.5x its size (translation ~1x, summary < 1x; a
      harvested worked solution is 5-50x its question).
    - ``transform_share`` 0.6 with ``template_share`` 0.5: most of the key's recent prompts
      are such transformations under a repeated frame.
    - ``transform_min_novelty`` 0.25: a transformation's material is new: the SimHash of all
      its prompt's words (``features.material_sketch``) 8 or more of 64 bits from each of the
      key's last ``MATERIAL_RING`` transformations' (``sketch_novelty``). The same 2,500-5,000
      characters of worked examples pasted before every item (transformation-mimic's
      ``preamble`` heads, held on organisations' accounts) are 0.0-0.03 from the last, and
      shuffled into another order each time 0.03-0.16 (10th-90th percentile); real services'
      documents 0.7-0.97. The sketch of the first 200 words alone (``EventFeatures.simhash``)
      was told apart by shuffling (0.13-0.66).
    - ``transform_item_share`` 0.5: under half the key's transformations carry an answer label
      or an item's shape (``BENCHMARK_FORMAT`` / ``ITEM_STRUCTURE``, in any language). A
      frame that poses items does so in every request (transformation-mimic's long-context
      harvests: 1.0); real services whose customers' documents now and then hold such lines,
      3-5 % of their transformations.
    - ``min_account_age_days`` 30: an account that old, by the provider's own records.
    - ``app_pending_share`` 0.1: the follow-up share a pending key needs, half the app's bar:
      over a key's first handful of turns the share is a mean of a few (a homework app with
      follow-ups on 45 % of its turns showed 1 in 7 at its 8th event, and one member of its
      cluster without the evidence pages the cluster); a sweep sends none.
    - ``app_opening_events`` 10: an organisation's key on a mature account each of whose first
      requests opened a conversation of its own, as an app's first users do, is pending until
      its 10th event, too early for a follow-up to show. A campaign whose frame opens as a quiz
      maker's template does ("Create a quiz of 10 questions on the topic ...") linked the maker's
      new keys into its cluster in lockstep at their first 1-5 requests, and the paging cluster
      named them (stress stream product-negatives-h). A sweep sends no conversation ids, or
      continues its own (agent loops, fabricated histories): it is not pending so. An
      individual's account is not either: a proxy hydra's aged heads each opening a
      conversation per request were (unwrapped +2000: key recall 0.993 -> 0.983 when it was).
    - ``app_pending_max_events`` 100: how long a pending key's incident may wait (twice the
      events a key needs to alert; an app with follow-ups on a third of its questions opens
      20 conversations in about 30 events, one with three turns a conversation in 60).
    - ``agent_step_share`` 0.4 / ``agent_release_share`` 0.2 / ``agent_min_conversations`` 3: an
      agent's steps continue the conversations the key opened and are mostly tool calls
      (product-negatives-f: 94 % of an agent key's requests continue a conversation, answers
      79 / 155 / 355 tokens at the quartiles; its brief-turn share 0.31-0.75 after its 50th
      event); a harvest's answers are long (fabricated conversations: their continued turns'
      answers 230-1,230 tokens at the quartiles, brief-turn share at most 0.37). Three tasks
      opened before it counts: an agent's tasks run 8-40 turns, and its third began by about its
      50th event, when its incident may open.
    - ``agent_pending_share`` 0.2: half the agent bar, as the app's pending share is half the
      app's: over an agent's first task the share is a mean of a few steps, one long code edit
      among them (product-negatives-f: a cluster of agent keys of several customers, linked by
      their framework's system prompt, opened at warning while one member had sent a task and
      an edit).
    - ``pending_early_events`` 20: over a key's first 20 events either pending share is a mean of
      a handful of turns, and one long code edit or one teacher's quiz without a change moves it
      by a fifth: its bar there is half (0.05 for the app's, 0.1 for the agent's). A quiz maker's
      new key at one follow-up in its first 11 requests (0.09) and a developer's agent whose second
      task opened with three long edits (0.18 at its 6th request) each left pending for a request
      or two, and a campaign's paging cluster linked by the same frame in lockstep named them at
      critical there (product-negatives-h +2000, agent-newcomers +2000). What it gives away,
      stated: a head that shows one consistent follow-up of a person's words (or a few brief tool
      turns) in its first 20 requests is not named by its cluster over them.
    - ``developer_max_tasks`` 8 / ``developer_task_window_hours`` 6: a developer's coding agent
      on a young or personal account (``developer_agent``) opens at most 8 tasks a 6 hours on
      average since its first request (agent-newcomers: 1-8 in a developer's busiest 6 hours,
      15-59 in a tool-use harvest's head's). An attacker who keeps to that rate needs several
      times the accounts for the same traces, and is named at info, sent (recorded only, under
      ``developer_held_tasks``).
    - ``developer_held_tasks`` 4: a developer's agent at a developer's usual pace, at most 4
      tasks a 6 hours on average since its first request, is held at info as an exculpated
      detection (recorded, not sent); from there to ``developer_max_tasks`` it is named at info,
      sent. agent-newcomers' developers opened 0.2-4.1 tasks a 6 hours when their incidents
      opened (53 of 60 named at info on one draw: 1.7 % of its ordinary keys, each a Slack post
      and a gateway webhook call); the harvest's young or individual heads 26-59. What it gives
      away, stated: a tool-use harvest that keeps each head under 4 tasks a 6 hours (a fourth to
      a fifteenth of what its heads ran) is recorded, not named, and needs that many times the
      accounts for the same traces. Set it to 0 to send every developer's info alert.
    - ``verified_tiers`` / ``eval_min_account_age_days`` 180: what makes an account verified for
      the evaluation evidence, beside an organisation: tiers reached only with a payment
      history (the provider's names: set them for yours), half a year old. The hydra accounts
      of 2026 were days old and on free or low tiers.
    - ``eval_pending_max_events`` 1000: an evaluation's first run is its item set (150-600
      items in the product-negatives stress streams; a benchmark of thousands pages before its
      re-run: allow that partner with ``allow_accounts``).
    - ``batch_share`` 0.5 / ``batch_min_batches`` 2: half the key's recent one-shot requests
      repeat a recurring line, and two questions retired: three batches seen.
    - ``batch_max_answer_tokens`` 600: a score and its feedback (graders' typical answers
      150-400 tokens); not the answer over the prompt: a grader's short questions and answers
      made that ratio 3.3-4.6 over its first 50 events, as high as the judging streams' sweeps.
    - ``batch_pending_max_events`` 400: a grader of classes of 15-120 students has retired two
      questions by then; a sweep under one frame is at info at most that long.
    - ``sample_key``: the key of the re-run sample's fingerprints (``DetectorConfig.sample_key``,
      a deployment secret: with the public default an attacker can tell which items are sampled).
    """

    alpha: float = 0.05
    human_gap_s: tuple[float, float] = (5.0, 1800.0)
    short_turn_chars: int = 300
    app_follow_up_share: float = 0.2
    app_release_share: float = 0.1
    app_memory_alpha: float = 0.02
    app_memory_cap: float = 0.4
    app_memory_share: float = 0.1
    app_min_conversations: int = 20
    app_min_person_share: float = 0.15
    app_release_person_share: float = 0.075
    transform_min_input_tokens: int = 150
    transform_max_ratio: float = 2.5
    transform_share: float = 0.6
    template_share: float = 0.5
    transform_min_novelty: float = 0.25
    transform_item_share: float = 0.5
    min_account_age_days: float = 30.0
    app_pending_share: float = 0.1
    app_opening_events: int = 10
    app_pending_max_events: int = 100
    agent_step_share: float = 0.4
    agent_release_share: float = 0.2
    agent_pending_share: float = 0.2
    agent_min_conversations: int = 3
    pending_early_events: int = 20
    developer_max_tasks: float = 8.0
    developer_held_tasks: float = 4.0
    developer_task_window_hours: float = 6.0
    verified_tiers: frozenset[str] = frozenset({"tier4", "tier5", "enterprise"})
    eval_min_account_age_days: float = 180.0
    eval_pending_max_events: int = 1000
    batch_share: float = 0.5
    batch_min_batches: int = 2
    batch_max_answer_tokens: float = 600.0
    batch_pending_max_events: int = 400
    sample_key: bytes = b""


def conversation_hash(conversation_id: str) -> int:
    """A stable nonzero 32-bit hash of a conversation id (0 marks an empty ring slot)."""
    return zlib.crc32(conversation_id.encode("utf-8", "surrogatepass")) or 1


class ProductEvidence:
    """Learns a key's exculpatory evidence from each event and says whether it holds.

    Works on the key's state object (``models.pipeline.KeyState``): the scalars ``app_ew``,
    ``app_memory``, ``app_held``, ``transform_ew``, ``transform_item_ew``, ``agent_ew``, ``agent_held``,
    ``convs`` and the rings ``app_conv_ids`` / ``app_conv_ts`` (seconds) and ``material`` (``MATERIAL_RING``
    sketches); it reads ``person_ew`` (learned by ``ConversationClaims``).

    >>> from types import SimpleNamespace
    >>> st = SimpleNamespace(n=0, app_ew=0.0, app_held=0.0, transform_ew=0.0, agent_ew=0.0, agent_held=0.0,
    ...                      convs=0.0, app_conv_ids=[0] * 8, app_conv_ts=[0] * 8)
    >>> ProductEvidence().conversation_follow_up(st, "c1", 0, 1_000, "What is 2+2? Explain step by step.")
    False
    >>> ProductEvidence().conversation_follow_up(st, "c1", 1, 40_000, "why?")  # 39 s later, short
    True
    >>> ProductEvidence().conversation_follow_up(st, "c9", 1, 80_000, "why?")  # never opened here
    False
    """

    def __init__(self, config: ProductEvidenceConfig | None = None) -> None:
        self.config = config or ProductEvidenceConfig()
        self.reruns = ItemReruns()
        self.batches = GradedBatches()

    # -- learning ----------------------------------------------------------------------------
    def learn_one(self, st, event: RequestEvent, features: EventFeatures) -> None:
        """Fold one event (and its ``features``) into the key's evidence (``st.n``: the key's
        events before it)."""
        # (runs for every event: plain arithmetic on bools, no per-event allocation but a
        # transformation's material ring)
        c = self.config
        continued = follow_up = False
        if event.conversation_id is not None:
            continued, follow_up = self.continued_turn(st, event.conversation_id, event.turn_index, event.ts_ms,
                                                       event.prompt)
        transform = False
        if not event.turn_index and self.transformation(event.input_tokens, event.output_tokens, len(event.prompt),
                                                        len(event.system_prompt or "")):
            # material new to the key, not the same padding again; and whether it is an item
            material = material_sketch(event.prompt)
            transform = sketch_novelty(material, st.material) >= c.transform_min_novelty
            st.material = [material, *st.material[:-1]]
            item = float(bool(features.families & _ITEM_SHAPE))
            st.transform_item_ew += (c.alpha * (item - st.transform_item_ew)) if st.n else item
        # an agent's step: a turn of its own conversation, tools declared, answered briefly
        agent_step = 0.0
        if continued and event.tools and event.output_tokens is not None:
            agent_step = 1.0 - harvested_share(event.output_tokens, HARVEST_LO_TOKENS, HARVEST_HI_TOKENS)
        if st.n:
            alpha = self.config.alpha
            st.app_ew += alpha * (follow_up - st.app_ew)
            st.app_memory = min(c.app_memory_cap, st.app_memory + c.app_memory_alpha * (follow_up - st.app_memory))
            st.transform_ew += alpha * (transform - st.transform_ew)
            st.agent_ew += alpha * (agent_step - st.agent_ew)
        else:
            st.app_ew, st.transform_ew, st.agent_ew = float(follow_up), float(transform), agent_step
            st.app_memory = min(c.app_memory_cap, float(follow_up))
        if st.agent_held:
            st.agent_held = float(st.agent_ew >= c.agent_release_share)
        else:
            st.agent_held = float(st.agent_ew >= c.agent_step_share and st.convs >= c.agent_min_conversations)
        # (a person's share of the follow-ups is a bar the evidence is earned at: a sweep that
        # keeps a tenth of its requests as turns of its own conversations has none; released only
        # under half of it, as the follow-up share is: it is a moving mean of a few dozen follow-ups)
        share = self.follow_up_share(st, int(st.n) + 1)
        if st.app_held:
            # (a quiet spell of a long-time app is no turn: its long-run share keeps it, app_memory_*)
            st.app_held = float(st.person_ew >= c.app_release_person_share
                                and (share >= c.app_release_share or st.app_memory >= c.app_memory_share))
        else:
            st.app_held = float(st.person_ew >= c.app_min_person_share and share >= c.app_follow_up_share
                                and st.convs >= c.app_min_conversations)
        if self._mature_organisation(event):  # (reads the prompt's lines: only where it counts)
            self.batches.learn_one(st, line_marks(event.prompt), int(st.n), not event.turn_index)
        if self._verified(event):  # (the sample costs a keyed hash: only where it can count)
            self.reruns.learn_one(st, item_fingerprint(event.prompt, self.config.sample_key), event.model,
                                  event.ts_ms)

    def follow_up_share(self, st, events: int) -> float:
        """The key's consistent follow-up share over its ``events`` events so far: ``app_ew``
        without its first event's weight. A key's first event opens a conversation, so its zero
        still weighs (1 - alpha) ** (events - 1) of the average: 0.32 at the 23rd event, when an
        app opens its 20th conversation and the evidence is first judged. Read as it is, a quiz
        maker whose teachers asked for changes after a fifth of their quizzes showed 0.09-0.18
        there, fell between its pending evidence (which removes that weight) and the held one,
        and was named in a campaign's cluster in that gap (product-negatives-h: 2-3 keys a draw).
        Past the 60th event the two differ by under 5 %.

        >>> from types import SimpleNamespace
        >>> round(ProductEvidence().follow_up_share(SimpleNamespace(app_ew=0.136), 23), 2)
        0.2
        >>> ProductEvidence().follow_up_share(SimpleNamespace(app_ew=0.0), 1)
        0.0
        """
        return self._without_first_event(st.app_ew, events)

    def _without_first_event(self, average: float, events: int) -> float:
        """An exponential average started on a key's first event (``alpha``), over its ``events``
        events so far, without that first event's weight: the mean of the events since."""
        if events <= 1:
            return float(average)
        return average / (1.0 - (1.0 - self.config.alpha) ** (events - 1))

    def conversation_follow_up(self, st, conversation_id: str, turn_index: int, ts_ms: int, prompt: str) -> bool:
        """Record the turn in the key's conversation ring; True when it is a consistent
        follow-up: a conversation this key opened, at a person's pace, in a short user turn."""
        return self.continued_turn(st, conversation_id, turn_index, ts_ms, prompt)[1]

    def continued_turn(self, st, conversation_id: str, turn_index: int, ts_ms: int, prompt: str) -> tuple[bool, bool]:
        """Record the turn in the key's conversation ring: whether it continues a conversation
        this key opened recently, and whether it is also a consistent follow-up (at a person's
        pace, in a short user turn)."""
        h, now = conversation_hash(conversation_id), ts_ms // 1000
        ids, times = st.app_conv_ids, st.app_conv_ts
        if turn_index == 0:
            # a conversation opened: it takes the slot idle longest
            slot = times.index(min(times))
            ids[slot], times[slot] = h, now & 0xFFFF_FFFF
            st.convs = min(65535.0, st.convs + 1)
            return False, False
        try:
            slot = ids.index(h)
        except ValueError:
            return False, False  # not opened by this key, or long ago: no claim either way
        low, high = self.config.human_gap_s
        gap = now - times[slot]
        times[slot] = max(times[slot], now & 0xFFFF_FFFF)
        return True, low <= gap <= high and len(prompt) <= self.config.short_turn_chars

    def transformation(self, input_tokens: int | None, output_tokens: int | None, prompt_chars: int = 0,
                       system_chars: int = 0) -> bool:
        """The answer is a transformation of material given: long input, answer at most
        ``transform_max_ratio`` times its size (gateway-measured usage; unknown: no). The
        material is the prompt's share of the input tokens (its characters against the system
        prompt's; all of them without a system prompt): a fixed system prompt is no material,
        and one of a thousand tokens around short items made any harvest's answers "smaller
        than the input".

        >>> evidence = ProductEvidence()
        >>> evidence.transformation(900, 850, prompt_chars=3_600), evidence.transformation(40, 900)
        (True, False)
        >>> evidence.transformation(1_050, 850, prompt_chars=200, system_chars=4_000)  # padding, not material
        False
        """
        c = self.config
        if input_tokens is None or output_tokens is None:
            return False
        if system_chars:
            input_tokens = input_tokens * prompt_chars / (prompt_chars + system_chars)
        if input_tokens < c.transform_min_input_tokens:
            return False
        return output_tokens <= c.transform_max_ratio * input_tokens

    # -- judging -----------------------------------------------------------------------------
    def holds(self, st, event: RequestEvent, template_share: float) -> bool:
        """Whether this key's exculpatory evidence holds at ``event`` (``exculpation`` is not
        empty), without building the reasons: asked of every event, for the link record."""
        return self._kind(st, event, template_share) is not None

    def _kind(self, st, event: RequestEvent, template_share: float) -> str | None:
        """Which evidence holds at ``event``: ``app_conversations``, ``agent_loops``,
        ``templated_transformation``, ``evaluation_reruns`` or None (the one test ``holds`` and
        ``exculpation`` share)."""
        c = self.config
        if not self.mature_account(event):
            return None
        if st.app_held and event.org_id is not None:
            return "app_conversations"
        if st.agent_held and event.org_id is not None:
            return "agent_loops"
        if event.org_id is not None and self._transforms(st, template_share):
            return "templated_transformation"
        if self.reruns.holds(st) and self._verified(event):
            return "evaluation_reruns"
        return None

    def mature_account(self, event: RequestEvent) -> bool:
        """The account is ``min_account_age_days`` old or older by the provider's records (an
        unknown age is not): what either kind of evidence, and a pending one, needs first (an
        app's, a transformation's, a grader's, an evaluation's; a developer's agent is judged on
        any account, and pending from its first agent steps)."""
        return (event.account_created_ms is not None
                and event.ts_ms - event.account_created_ms >= self.config.min_account_age_days * DAY_MS)

    def _mature_organisation(self, event: RequestEvent) -> bool:
        """The account is an organisation's and ``min_account_age_days`` old: the one an agent's
        (and a grader's) evidence counts on."""
        return event.org_id is not None and self.mature_account(event)

    def _verified(self, event: RequestEvent) -> bool:
        """The account is verified for the evaluation evidence: ``eval_min_account_age_days``
        old by the provider's records, an organisation's, on one of ``verified_tiers``."""
        c = self.config
        return (event.org_id is not None and event.tier in c.verified_tiers and event.account_created_ms is not None
                and event.ts_ms - event.account_created_ms >= c.eval_min_account_age_days * DAY_MS)

    def _transforms(self, st, template_share: float) -> bool:
        """Most of the key's recent prompts are transformations of new material under a
        repeated frame, and most of those are no items."""
        c = self.config
        return (st.transform_ew >= c.transform_share and template_share >= c.template_share
                and st.transform_item_ew < c.transform_item_share)

    def unverified_product(self, st, event: RequestEvent, template_share: float) -> str | None:
        """Which product's evidence this key shows on a mature account of no organisation
        (``app_conversations`` or ``templated_transformation``; None: neither, or an
        organisation's account, where it holds): its incident is capped at info and *sent*
        (``unverified_product_reasons``), not held as an exculpated detection. A product that
        serves end users is a business's. Sweeps dressed as a tutoring app on bought aged
        accounts of individuals (the commodity a hydra is built from: stress stream app-mimic)
        showed every follow-up the app evidence counts and were held silently; so were
        long-context harvests under one frame answered at most 2.5x their input
        (transformation-mimic)."""
        if event.org_id is not None or not self.mature_account(event):
            return None
        if st.app_held:
            return "app_conversations"
        if self._transforms(st, template_share):
            return "templated_transformation"
        return None

    def developer_agent(self, st, event: RequestEvent) -> bool:
        """Whether the key is a developer's coding agent on an account the agent evidence does
        not excuse (young, or of no organisation): its agent evidence holds (``agent_held``)
        and it opens tasks at a developer's rate (``task_rate``). Its incident is capped at info
        and *sent* (``developer_agent_reasons``), as an unverified product's is, or recorded and
        not sent at a developer's usual pace (``developer_agent_held``): a coding CLI's
        system prompt ("work step by step") is extraction wording on every request of every
        developer who runs it on a personal key (stress stream agent-newcomers: 24 of 60 new
        developers paged at critical by their own incidents)."""
        if not st.agent_held or self._mature_organisation(event):
            return False
        return self.task_rate(st, event) <= self.config.developer_max_tasks

    def task_rate(self, st, event: RequestEvent) -> float:
        """The conversations the key opened per ``developer_task_window_hours``, on average
        since its first request (its first window counted whole). A harvest of tool-use traces
        runs task after task: 15-59 in its busiest 6 hours on agent-newcomers' three draws,
        where a developer opened 1-8."""
        return self.tasks_per_window(st, event.ts_ms)

    def tasks_per_window(self, st, ts_ms: float) -> float:
        """``task_rate`` at ``ts_ms`` (the key's pipeline reads it at its last event's time)."""
        hours = self.config.developer_task_window_hours
        return st.convs / max(1.0, (ts_ms - st.first_ts) / (hours * 3_600_000))

    def developer_agent_held(self, st, event: RequestEvent) -> bool:
        """Whether a developer's agent (``developer_agent``) keeps a developer's usual pace, at
        most ``developer_held_tasks`` a window: its info incident is then an exculpated detection,
        recorded and not sent (``developer_agent_reasons``)."""
        return self.task_rate(st, event) <= self.config.developer_held_tasks

    def developer_agent_reasons(self, st, event: RequestEvent, held: bool = False) -> list[dict]:
        """The reasons of an incident capped at info as a developer's agent: the agent evidence
        as ``unverified_agent_loops``, then the task rate against its bar, the account's
        organisation and age. At most ``developer_held_tasks`` (``held``) they open with
        ``exculpatory: developer_agent_loops`` and the alert is recorded, not sent
        (``contracts.alert.is_exculpated``); over it, the alert is sent, at info, never a page."""
        c = self.config
        rate = round(self.task_rate(st, event), 2)
        reasons = [{"signal": "exculpatory", "value": "developer_agent_loops", "baseline": None, "weight": None}] \
            if held else []
        return reasons + [
            {"signal": "unverified_agent_loops", "value": round(float(st.agent_ew), 3),
             "baseline": c.agent_step_share, "weight": None},
            {"signal": "conversations_opened", "value": int(st.convs), "baseline": c.agent_min_conversations,
             "weight": None},
            {"signal": "tasks_per_window", "value": rate,
             "baseline": c.developer_held_tasks if held else c.developer_max_tasks, "weight": None},
            {"signal": "account_organisation", "value": event.org_id, "baseline": None, "weight": None},
            _account_age_reason(event, c.min_account_age_days)]

    def unverified_product_reasons(self, st, event: RequestEvent, kind: str, template_share: float) -> list[dict]:
        """The reasons of an incident held at info by a product's evidence (``kind``, from
        ``unverified_product``) on an account of no organisation, first: the evidence as
        ``unverified_<kind>`` (an app's consistent follow-up share, or the transformation share,
        against the share that keeps it), then the account (no organisation) and its age. Not
        exculpatory: the alert is sent, at info, never a page."""
        if kind == "app_conversations":
            evidence = self._app_evidence(st, "unverified_app_conversations")
        else:
            evidence = self._transformation_evidence(st, template_share, "unverified_templated_transformation")
        return [*evidence, {"signal": "account_organisation", "value": None, "baseline": None, "weight": None},
                _account_age_reason(event, self.config.min_account_age_days)]

    def _transformation_evidence(self, st, template_share: float, share_signal: str) -> list[dict]:
        """The transformation evidence as reasons: its share (as ``share_signal``), the
        repetition of the key's frame and the share of its transformations that were items, each
        against its bar (the last one's a ceiling)."""
        c = self.config
        return [{"signal": share_signal, "value": round(float(st.transform_ew), 3), "baseline": c.transform_share,
                 "weight": None},
                {"signal": "template_repetition", "value": round(float(template_share), 3),
                 "baseline": c.template_share, "weight": None},
                {"signal": "transformed_items", "value": round(float(st.transform_item_ew), 3),
                 "baseline": c.transform_item_share, "weight": None}]

    def _app_evidence(self, st, share_signal: str) -> list[dict]:
        """An app's evidence as reasons: its consistent follow-up share (as ``share_signal``) and
        its long-run share (``long_run_follow_up_share``, which keeps it through a quiet spell),
        each against the bar that keeps it once held, and the conversations it opened."""
        c = self.config
        # (its bar once held: it holds at app_follow_up_share, and is let go only under this)
        return [{"signal": share_signal, "value": round(self.follow_up_share(st, int(st.n)), 3),
                 "baseline": c.app_release_share, "weight": None},
                {"signal": "long_run_follow_up_share", "value": round(float(st.app_memory), 3),
                 "baseline": c.app_memory_share, "weight": None},
                {"signal": "conversations_opened", "value": int(st.convs), "baseline": c.app_min_conversations,
                 "weight": None}]

    def evaluation_pending(self, st, event: RequestEvent) -> bool:
        """Whether this key may be an evaluation whose re-run has not come yet (after
        ``learn_one``): a verified account, temperature 0, before its
        ``eval_pending_max_events``-th event, its re-runs not yet the evidence. Whether the key
        had a past before its extraction is the caller's to check (``key_history``)."""
        return (event.temperature == 0 and st.n < self.config.eval_pending_max_events and self._verified(event)
                and not self.reruns.holds(st))

    def evaluation_pending_reasons(self, st, event: RequestEvent) -> list[dict]:
        """The reasons of an incident held at info while its evaluation evidence is pending,
        first: the key's events so far against the most it may wait, then what the account is.
        Not exculpatory: the alert is sent (at info, never a page), since without the re-run the
        traffic is a harvest's, and a harvest on a bought verified account must be named."""
        c = self.config
        return [{"signal": "evaluation_pending", "value": int(st.n), "baseline": c.eval_pending_max_events,
                 "weight": None},
                {"signal": "account_tier", "value": event.tier, "baseline": None, "weight": None},
                _account_age_reason(event, c.eval_min_account_age_days)]

    def graded(self, st, event: RequestEvent) -> bool:
        """Whether this key grades in batches (after ``learn_one``): on an organisation's account
        ``min_account_age_days`` old, its recent one-shot requests repeat a recurring line of its
        own (``batch_share``, without the weight of the events before the key could count), its
        answers are verdicts, and it has retired ``batch_min_batches`` questions recently or is
        before its ``batch_pending_max_events``-th event (its first batches).

        >>> from types import SimpleNamespace
        >>> import json
        >>> from .events import parse_event
        >>> event = parse_event(json.dumps({"schema": "llm.request.v1", "event_id": "e", "ts": "2026-02-01T00:00:00Z",
        ...                                 "api_key_id": "k", "account_id": "a", "org_id": "o", "model": "m",
        ...                                 "prompt": "Grade it", "account": {"created_at": "2025-01-01T00:00:00Z"}}))
        >>> grader = dict(batch_ew=0.7, answer_n=50.0, answer_log=5.7)  # answers of ~300 tokens
        >>> [ProductEvidence().graded(SimpleNamespace(n=n, batches=b, batch_last=last, **grader), event)
        ...  for n, b, last in ((50, 0.0, 0.0), (399, 1.0, 380.0), (400, 1.0, 380.0), (900, 2.0, 880.0))]
        [True, True, False, True]
        """
        c = self.config
        if st.n < 2 or event.org_id is None or not self._brief(st) or not self.mature_account(event):
            return False
        if self.batches.share(st, int(st.n)) < c.batch_share:
            return False
        return st.n < c.batch_pending_max_events or self.batches.batches(st, int(st.n)) >= c.batch_min_batches

    def _brief(self, st) -> bool:
        """The key's typical answer is at most ``batch_max_answer_tokens`` (a verdict)."""
        return st.answer_n > 0 and st.answer_log <= math.log(self.config.batch_max_answer_tokens)

    def graded_reasons(self, st, event: RequestEvent) -> list[dict]:
        """The reasons of an incident held at info because the key grades in batches, first:
        the questions it retired (against the number that keeps the cap past its first
        batches), its share of requests repeating a recurring line, its typical answer, the
        account's age. Not exculpatory: the alert is sent (a benchmark swept in subject order
        has the same structure)."""
        c = self.config
        return [{"signal": "graded_batches", "value": self.batches.batches(st, int(st.n)),
                 "baseline": c.batch_min_batches, "weight": None},
                {"signal": "recurring_line_share", "value": round(float(st.batch_ew), 3), "baseline": c.batch_share,
                 "weight": None},
                {"signal": "typical_answer_tokens", "value": round(math.exp(st.answer_log)),
                 "baseline": c.batch_max_answer_tokens, "weight": None},
                _account_age_reason(event, c.min_account_age_days)]

    def pending(self, st, event: RequestEvent) -> bool:
        """Whether this key's app or agent evidence is pending (``pending_status``)."""
        return self.pending_status(st, event) != ProductStatus.NONE

    def pending_status(self, st, event: RequestEvent) -> ProductStatus:
        """Whether this key's app or agent evidence is pending at ``event`` (after ``learn_one``
        and the key's count ``st.n``, this event included), before its ``app_pending_max_events``-th
        event, on a mature account (a developer's agent: on any):

        - an organisation's key before its ``app_opening_events``-th event, each of whose events
          opened a conversation of its own (an app's first users, before any could reply:
          ``FIRST_USERS_PENDING``, which excuses a cluster's member but no content cohort's);
        - its agent steps reach ``agent_pending_share`` (half of it over the key's first
          ``pending_early_events``: ``_pending_bar``) on an organisation's account and the agent
          evidence does not hold yet (``agent_min_conversations`` not opened, or the share not yet
          there with the first event's weight counted); on a young or personal account the same,
          while it opens tasks at a developer's rate (``developer_agent``), whatever its age;
        - its follow-ups reach ``app_pending_share`` (``_pending_bar`` too) and are a person's
          (``app_min_person_share``),
          and the app evidence does not hold (yet, or no longer: then it is pending only while
          the share stays over that bar, which is the release's).

        The follow-up share is ``follow_up_share``: ``app_ew`` without its first event's weight
        (a key's first event opens a conversation, so at its 10th event the exponential average
        is still 60 % that first zero).

        >>> from types import SimpleNamespace
        >>> import json
        >>> from .events import parse_event
        >>> event = parse_event(json.dumps({"schema": "llm.request.v1", "event_id": "e", "ts": "2026-02-01T00:00:00Z",
        ...                                 "api_key_id": "k", "account_id": "a", "org_id": "o", "model": "m",
        ...                                 "prompt": "why?",
        ...                                 "account": {"created_at": "2025-01-01T00:00:00Z"}}))
        >>> no_agent = dict(agent_ew=0.0, agent_held=0.0)
        >>> st = SimpleNamespace(n=10, app_ew=0.16, app_held=0.0, convs=7.0, person_ew=0.6, **no_agent)
        >>> ProductEvidence().pending(st, event)  # 0.16 of which the first event's zero weighs 0.63: 0.4
        True
        >>> ProductEvidence().pending(SimpleNamespace(n=10, app_ew=0.0, app_held=0.0, convs=10.0, person_ew=0.5,
        ...                                           **no_agent), event)
        False

        Its first requests, each opening a conversation of its own (an organisation's key):

        >>> ProductEvidence().pending(SimpleNamespace(n=3, app_ew=0.0, app_held=0.0, convs=3.0, person_ew=0.5,
        ...                                           **no_agent), event)
        True

        Judged at its 20th conversation at 0.13, short of the app's 0.2: pending until its 100th event.

        >>> ProductEvidence().pending(SimpleNamespace(n=24, app_ew=0.09, app_held=0.0, convs=20.0, person_ew=0.6,
        ...                                           **no_agent), event)
        True
        >>> ProductEvidence().pending(SimpleNamespace(n=60, app_ew=0.4, app_held=1.0, convs=40.0, person_ew=0.6,
        ...                                           **no_agent), event)  # held: not pending
        False

        An agent's steps pending the same way, until its share holds (``agent_held``):

        >>> ProductEvidence().pending(SimpleNamespace(n=10, app_ew=0.0, app_held=0.0, convs=1.0, person_ew=0.0,
        ...                                           agent_ew=0.3, agent_held=0.0), event)  # 0.3 / 0.63: 0.48
        True
        """
        c, none = self.config, ProductStatus.NONE
        if st.n >= c.app_pending_max_events:
            return none
        # An agent's steps, before its conversations or its share count: an organisation's agent
        # on a mature account, or a developer's at a developer's rate on any other (its cluster
        # opens at info: one CLI's users share its frame in lockstep). Most keys take no agent
        # steps: that test first.
        if st.agent_ew > 0.0 and not st.agent_held and st.n >= 2 \
                and self._without_first_event(st.agent_ew, int(st.n)) >= self._pending_bar(c.agent_pending_share, st) \
                and (self._mature_organisation(event) or self.task_rate(st, event) <= c.developer_max_tasks):
            return ProductStatus.PENDING
        if not self.mature_account(event):
            return none
        if st.n < c.app_opening_events and st.convs >= st.n and event.org_id is not None:
            # each of its first requests opened a conversation: an app's first users
            return ProductStatus.FIRST_USERS_PENDING
        if st.n < 2:
            return none
        if st.app_held or st.person_ew < c.app_min_person_share:
            return none
        share = self.follow_up_share(st, int(st.n))
        return ProductStatus.PENDING if share >= self._pending_bar(c.app_pending_share, st) else none

    def _pending_bar(self, bar: float, st) -> float:
        """A pending share's bar at the key's count ``st.n``: half of it over the key's first
        ``pending_early_events`` events, where the share is a mean of a handful of turns."""
        return bar / 2 if st.n < self.config.pending_early_events else bar

    def exculpation(self, st, event: RequestEvent, template_share: float) -> list[dict]:
        """The reasons that cap this key's incident at info, first the kind
        (``{"signal": "exculpatory", "value": "app_conversations"}``), or [] when none holds."""
        kind = self._kind(st, event, template_share)
        if kind is None:
            return []
        c = self.config
        if kind == "app_conversations":
            evidence = self._app_evidence(st, "consistent_follow_up_share")
        elif kind == "agent_loops":
            evidence = [{"signal": "brief_answered_turn_share", "value": round(float(st.agent_ew), 3),
                         "baseline": c.agent_step_share, "weight": None},
                        {"signal": "conversations_opened", "value": int(st.convs),
                         "baseline": c.agent_min_conversations, "weight": None}]
        elif kind == "evaluation_reruns":
            evidence = [{"signal": "item_rerun_share", "value": round(float(st.rerun_ew), 3),
                         "baseline": self.reruns.min_share, "weight": None},
                        {"signal": "items_rerun", "value": int(st.rerun_hits), "baseline": self.reruns.min_hits,
                         "weight": None},
                        {"signal": "account_tier", "value": event.tier, "baseline": None, "weight": None}]
        else:
            evidence = self._transformation_evidence(st, template_share, "transformation_share")
        return [{"signal": "exculpatory", "value": kind, "baseline": None, "weight": None}, *evidence,
                _account_age_reason(event, c.eval_min_account_age_days if kind == "evaluation_reruns"
                                    else c.min_account_age_days)]


def _account_age_reason(event: RequestEvent, baseline: float) -> dict:
    """The alert reason that states the account's age (days, by the provider's records) against
    the age the evidence needs."""
    return {"signal": "account_age_days", "value": round((event.ts_ms - event.account_created_ms) / DAY_MS, 1),
            "baseline": baseline, "weight": None}
