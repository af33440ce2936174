"""The per-key signal detectors' ``learn_one``, fused into one pass over the key's flat state.

``KeyPipeline`` can drive its detectors through their contract (``models.detectors.base``:
load the key's state with ``set_state``, ``learn_one`` a feature dict, read it back with
``get_state``): that is the reference, and what a new detector plugs into. Per event it
builds a dict, moves ~30 values into and out of thirteen objects and calls a method per
detector: ~40 % of the key step's CPU. This class does the same arithmetic, in the same
order, on the decoded ``KeyState`` in place, with every hyperparameter read from the
detectors it is built from (their ``__init__`` stays the one place they are set).
``tests/unit/models/test_fused_signals.py`` proves both paths give the same state, rows and
alerts, bit for bit; a detector added to the pipeline must be added here too (the test
fails until it is).
"""
from __future__ import annotations

import math

from .detectors import (AnswerLength, ConversationClaims, ExtractionRateCUSUM, ExtractionShare, FollowUpShare,
                        HarvestOnset, InterArrivalTiming, LargeOutputBudget, OutputYield, PromptLength,
                        ReadingPace, TemplateRepetition, TopicNovelty)
from .detectors.conversation_claims import (added_tokens, check_claim, learn_person, on_a_clock,
                                            remember_turn)
from .detectors.reading_pace import reply_ready
from .features import EventFeatures, answered_style


class FusedSignals:
    """``learn(st, f, n)``: what the thirteen detectors' ``learn_one`` do to a key's state."""

    def __init__(self, reading: ReadingPace, claims: ConversationClaims, length: AnswerLength, onset: HarvestOnset,
                 style: ExtractionShare, follow_up: FollowUpShare, novelty: TopicNovelty,
                 repetition: TemplateRepetition, budget: LargeOutputBudget, yield_: OutputYield,
                 evidence: ExtractionRateCUSUM, timing: InterArrivalTiming, prompt_length: PromptLength) -> None:
        self.reading_keep, self.reading_alpha = 1.0 - reading.alpha, reading.alpha
        self.read_ms_per_token = reading.read_ms_per_token
        self.claims = claims  # (its rule runs as check_claim / remember_turn, on the key's sketch)
        self.claims_keep, self.claims_alpha = 1.0 - claims.alpha, claims.alpha
        self.length_keep, self.length_alpha = 1.0 - length.alpha, length.alpha
        self.onset = onset
        self.onset_ramp = math.log(onset.long_tokens / onset.ordinary_tokens)
        self.style = style
        self.style_keep, self.style_alpha = 1.0 - style.alpha, style.alpha
        self.follow_up_keep, self.follow_up_alpha = 1.0 - follow_up.alpha, follow_up.alpha
        self.novelty_keep, self.novelty_alpha, self.novelty_ring = 1.0 - novelty.alpha, novelty.alpha, novelty.ring
        self.repetition_keep, self.repetition_alpha = 1.0 - repetition.alpha, repetition.alpha
        self.repetition_ring = repetition.ring
        self.budget_keep, self.budget_alpha, self.budget_tokens = 1.0 - budget.alpha, budget.alpha, budget.min_tokens
        self.yield_keep, self.yield_alpha, self.yield_tokens = 1.0 - yield_.alpha, yield_.alpha, yield_.full_tokens
        self.evidence_cap = 2.0 * evidence.threshold
        self.evidence_up, self.evidence_down = evidence._llr_up, evidence._llr_down
        self.timing = timing
        self.prompt_keep, self.prompt_alpha = 1.0 - prompt_length.alpha, prompt_length.alpha

    def learn(self, st, f: EventFeatures, n: int) -> None:
        """Learn the event of features ``f`` into the key's state ``st`` (``n``: its events
        before this one; the caller advances ``st.n``)."""
        prompt_tokens = f.input_tokens
        # ReadingPace: sent before the key's previous answer could be read (the claim asks it too)
        unread = n > 0 and f.ts_ms < st.reply_ready
        st.unread_ew = self.reading_keep * st.unread_ew + self.reading_alpha * unread if n > 1 else float(unread)
        st.reply_ready = reply_ready(f.ts_ms, f.latency_ms, f.output_tokens, self.read_ms_per_token)
        if f.turn or f.conversation:
            follow_up, prompt_tokens = self._learn_claims(st, f, n, unread)
        else:  # no claim and no conversation to sketch (most events): the claims' share decays
            follow_up = False
            st.claims_share = self.claims_keep * st.claims_share if n else 0.0  # (learning 0.0)
        out = f.output_tokens
        if out > 0:  # AnswerLength: only answers with output tokens
            st.answer_log = math.log(out) if st.answer_n == 0 else \
                self.length_keep * st.answer_log + self.length_alpha * math.log(out)
            st.answer_n += 1
        self._learn_onset(st, out, follow_up, n)
        # ExtractionShare (and ExtractionRateCUSUM's share): harvested_style
        style = answered_style(f)
        if out >= 0 and style:
            lo, hi = self.style.harvest_lo, self.style.harvest_hi
            style *= max(0.0, min(1.0, (out - lo) / (hi - lo)))
        if n:
            st.style_ew = self.style_keep * st.style_ew + self.style_alpha * style
            st.followup_ew = self.follow_up_keep * st.followup_ew + self.follow_up_alpha * (1.0 if follow_up else 0.0)
        else:
            st.style_ew, st.followup_ew = style, (1.0 if follow_up else 0.0)
        self._learn_content(st, f, n)
        big = float(f.max_tokens >= self.budget_tokens)  # LargeOutputBudget
        st.bigout_ew = self.budget_keep * st.bigout_ew + self.budget_alpha * big if n else big
        if out >= 0:  # OutputYield: only answers whose usage was reported
            harvest = min(1.0, out / self.yield_tokens)
            st.yield_ew = self.yield_keep * st.yield_ew + self.yield_alpha * harvest if st.yield_n else harvest
            st.yield_n += 1
        harvested = 0.0 if follow_up else style  # ExtractionRateCUSUM
        llr = harvested * self.evidence_up + (1.0 - harvested) * self.evidence_down
        evidence = st.evidence + llr  # max(0.0, min(cap, ...)), as comparisons (same floats, no calls)
        st.evidence = 0.0 if not evidence > 0.0 else evidence if evidence < self.evidence_cap else self.evidence_cap
        self._learn_timing(st, f.ts_ms, n)
        if prompt_tokens > 0:  # PromptLength: only prompts with usage, seeded by the first
            value = math.log(1.0 + prompt_tokens)
            st.prompt_log = self.prompt_keep * st.prompt_log + self.prompt_alpha * value if st.prompt_log else value

    def _learn_claims(self, st, f: EventFeatures, n: int, unread: bool) -> tuple[bool, int]:
        """ConversationClaims; whether the event is a conversation turn (a follow-up whose claim
        holds, not a new item), and its own prompt's input tokens (``prompt_tokens``)."""
        c, turn = self.claims, f.turn
        kind = check_claim(st.conv_ids, st.conv_marks, f.conversation, turn, f.input_tokens, c.max_skip,
                           c.history_ratio)
        turn_held, prompt_tokens = False, f.input_tokens
        if turn > 0:
            person = st.person_ew  # (as the follow-up finds it: counts_as_turn below)
            st.person_ew = learn_person(person, f.turn_words, c.person_words, c.person_alpha)
            st.claims_n += 1
            if kind >= 0:
                st.claims_broken += 1
                st.claim_kinds[kind] = min(65535, st.claim_kinds[kind] + 1)
            else:
                turn_held = c.counts_as_turn(person, answered_style(f), f.content_words, f.output_tokens, unread,
                                             on_a_clock(n, st.gap_var))
                if not turn_held:
                    prompt_tokens = added_tokens(st.conv_ids, st.conv_marks, f.conversation, f.input_tokens,
                                                 f.prompt_chars)
        broken = 0.0 if kind < 0 else 1.0
        st.claims_share = self.claims_keep * st.claims_share + self.claims_alpha * broken if n else broken
        if f.conversation:
            remember_turn(st.conv_ids, st.conv_marks, f.conversation, turn, kind, f.input_tokens, f.output_tokens)
        return turn_held, prompt_tokens

    def _learn_onset(self, st, out: int, follow_up: bool, n: int) -> None:
        """HarvestOnset."""
        if out <= 0:
            llr = 0.0
        else:
            o = self.onset
            if out <= o.ordinary_tokens or follow_up:
                llr = o._llr_down
            elif out >= o.long_tokens:
                llr = o._llr_up
            else:
                long = math.log(out / o.ordinary_tokens) / self.onset_ramp
                llr = long * o._llr_up + (1.0 - long) * o._llr_down
        evidence = max(0.0, min(self.onset.cap, st.harvest_evidence + llr))
        if evidence > 0.0 and not st.harvest_evidence:
            st.harvest_start = n
        st.harvest_evidence = evidence

    def _learn_content(self, st, f: EventFeatures, n: int) -> None:
        """TopicNovelty and TemplateRepetition (rings updated in place)."""
        simhash, sketch = f.simhash, st.sketch
        # (TopicNovelty.score_one's expression, with map/filter in C for its generator)
        novelty = min(1.0, min(map(int.bit_count, map(simhash.__xor__, filter(None, sketch))), default=32) / 32.0)
        template, templates = f.template_hash & 0xFFFF_FFFF, st.templates
        repeated = 1.0 if template in templates else 0.0
        if n:
            st.novelty_ew = self.novelty_keep * st.novelty_ew + self.novelty_alpha * novelty
            st.template_ew = self.repetition_keep * st.template_ew + self.repetition_alpha * repeated
        else:
            st.novelty_ew, st.template_ew = novelty, repeated
        sketch[n % self.novelty_ring] = simhash
        templates[n % self.repetition_ring] = template

    def _learn_timing(self, st, ts: int, n: int) -> None:
        """InterArrivalTiming."""
        if n == 1:
            st.gap_mean = math.log(max(1.0, (ts - st.last_ts) / 1000.0))
            st.gap_var = self.timing.prior_var
        elif n:
            alpha = self.timing.alpha
            delta = math.log(max(1.0, (ts - st.last_ts) / 1000.0)) - st.gap_mean
            st.gap_mean = st.gap_mean + alpha * delta
            st.gap_var = (1 - alpha) * (st.gap_var + alpha * delta * delta)
        st.last_ts = max(st.last_ts, ts)
