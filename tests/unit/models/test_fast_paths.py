"""The featurizer's fast paths give what their plain definitions give, on fuzzed strings.

Each reference below is the straightforward code the fast path replaced (kept here, not in
``models/``, as the definition the fast path must meet); the strings are built from the
rules' own triggers and regex fragments, mixed with arbitrary Unicode (surrogates included),
so that the rare paths (a trigger present but its regex not matching, overlapping
triggers, several families at once) are hit, not just plain text.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.models import features
from distillguard.models.normalise import normalise


def family_present_reference(family, lower: str) -> bool:
    """A family is present when one of its rules matches: one of the rule's triggers is a
    substring, and the rule's regex (if any) is found."""
    for triggers, regex in family:
        for trigger in triggers:
            if trigger in lower:
                if regex is None or regex.search(lower):
                    return True
                break  # the rule's regex covers all its triggers: one search is enough
    return False


def families_reference(lower: str, skip: int = 0) -> int:
    return sum(1 << i for i, family in enumerate(features._STYLE_FAMILIES)
               if not skip >> i & 1 and family_present_reference(family, lower))


_TRIGGERS = sorted({t for family in features._STYLE_FAMILIES for triggers, _ in family for t in triggers})
# words the rules' regexes look for after a trigger, so that many fuzzed strings match a regex too
_REGEX_WORDS = ["reasoning", "the steps", "your work", "response", "answer", "letter", "options:\n- a",
                "carefully", "out loud", "1 to 10", "10 points", "examples", "questions", "tools",
                "functions", "\n", " ", "a) ", "\nb. ", "search(query), calc(x)", ": ", "(a)", "thinking",
                "question: x\nanswer:", "final answer", "solution", "5 diverse",
                # the rules anchored at the end: their labels, colons and whitespace after them
                "\nreasoning", "thoughts", "let's think", "answer:", ":", " :", "::", "\t\n"]
# lone surrogates reach the prompt as JSON escapes; Unicode whitespace (the end-anchored rules strip it)
_ODD = ["\ud800", "\udfff", "\x00", "\U0001f600", "\u200b", "ｓｔｅｐ", "\x1c", "\xa0", "\u2029", "\u3000"]
_piece = st.one_of(st.sampled_from(_TRIGGERS), st.sampled_from(_REGEX_WORDS), st.sampled_from(_ODD),
                   st.text(max_size=12), st.text(alphabet="abcdeprst :()\n.-", max_size=12))
_fuzzed = st.lists(_piece, max_size=30).map("".join)


@settings(max_examples=1500, deadline=None)
@given(_fuzzed, st.integers(min_value=0, max_value=31))
def test_families_present_is_the_rule_loop(text, skip):
    assert features._families_present(text, skip) == families_reference(text, skip)


@settings(max_examples=500, deadline=None)
@given(_fuzzed)
def test_families_present_on_normalised_text(text):
    lower = normalise(text)
    assert features._families_present(lower) == families_reference(lower)


def test_overlapping_triggers_all_count():
    # "explain your " holds the trigger "explain ": a matcher that reports one match per
    # position would miss the second rule ("explain your thinking" is no "explain the steps")
    text = "please explain your thinking."
    assert features._families_present(text) == families_reference(text) == 1


def test_every_trigger_alone_agrees():
    for trigger in _TRIGGERS:
        for text in (trigger, f"x {trigger} y", trigger * 2):
            assert features._families_present(text) == families_reference(text), text


def test_state_last_ts_reads_what_decode_state_reads():
    # states as replay holds them, after events at various times, and the layouts that fall
    # back to the whole decode (no state, an old or unknown layout, a wrong length)
    from distillguard.models.events import parse_event
    from distillguard.models.pipeline import KeyPipeline, decode_state, state_last_ts

    pipeline, state, states = KeyPipeline(), None, [None, b"", b"\x03" + bytes(40), b"\xff" * 10]
    for i, ts in enumerate(("2026-02-01T00:00:00Z", "2026-02-01T00:00:07.250Z", "2026-02-03T11:22:33Z")):
        event = parse_event(('{"schema":"llm.request.v1","event_id":"e%d","ts":"%s","api_key_id":"k",'
                             '"account_id":"a","model":"m","prompt":"hello there"}' % (i, ts)).encode())
        state = pipeline.step(state, event).state
        states += [state, state[:-1]]
    for data in states:
        assert state_last_ts(data) == decode_state(data).last_ts
    assert state_last_ts(state) == 1770117753000.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=6), st.lists(st.integers(0, 5), max_size=20))
def test_normalise_memo_is_the_normaliser(texts, order):
    # the same str objects again and again, in any order (the memo keeps the last one)
    from distillguard.models.normalise import _normalised
    for i in order + list(range(len(texts))):
        text = texts[i % len(texts)]
        assert normalise(text) == _normalised(text)


def test_the_same_prompt_is_normalised_once():
    prompt = "Explain STEP by step: " + "x" * 100
    first = normalise(prompt)
    assert normalise(prompt) is first  # the memo's result, not a second lower-cased copy
    other = "".join(["Explain STEP by step: ", "x" * 100])  # equal, another object: computed again
    assert normalise(other) == first and normalise(other) is not first


def template_hash_reference(head: str) -> int:
    """The template fingerprint as first written: quoted spans, then digits, masked."""
    masked = features._DIGITS.sub("#", features._QUOTED.sub("\"…\"", head))
    return features._h64(" ".join(masked.split(None, 8)[:8]))


_quoting = st.lists(st.one_of(st.sampled_from(["\"", "'", "`", "12", "3.5", " ", "\n", "it's", "\"a b\"", "`x`"]),
                              _piece), max_size=40).map("".join)


@settings(max_examples=1500, deadline=None)
@given(_quoting)
def test_template_hash_skips_the_quote_mask_only_when_nothing_is_quoted(text):
    assert features._template_hash(text[:400]) == template_hash_reference(text[:400])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["alpha", "beta", "gamma"]), st.text(min_size=1, max_size=8)),
                min_size=1, max_size=200))
def test_simhash_with_and_without_every_word_memoised(words):
    # the one-pass sum over the memo, the fallback that fills it, and a memo cleared when full
    features._WORD_SPREADS.clear()
    cold = features._simhash(words)
    assert features._simhash(words) == cold  # (now every word is memoised: the one-pass sum)
    del features._WORD_SPREADS[words[-1]]
    assert features._simhash(words) == cold
    expected = 0
    for bit in range(64):
        ones = sum(features._h64(w) >> bit & 1 for w in words)
        expected |= (ones > len(words) // 2) << bit
    assert cold == expected


def simhash_by_counting(words) -> int:
    expected = 0
    for bit in range(64):
        ones = sum(features._h64(w) >> bit & 1 for w in words)
        expected |= (ones > len(words) // 2) << bit
    return expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=40),
       st.lists(st.text(min_size=1, max_size=6), max_size=12), st.integers(4, 24))
def test_simhash_when_a_prompts_new_words_overflow_the_memo(seen, words, bound):
    # the memo is cleared when the new words would take it past its bound: the prompt's words
    # are then all spread afresh, the memo stays bounded, and the sketch is the bit count
    saved = features._WORD_SPREADS_MAX
    features._WORD_SPREADS_MAX = bound
    try:
        features._WORD_SPREADS.clear()
        for chunk in range(0, len(seen), 4):
            assert features._simhash(seen[chunk:chunk + 4]) == simhash_by_counting(seen[chunk:chunk + 4])
            assert len(features._WORD_SPREADS) <= bound
        if words:
            assert features._simhash(words) == simhash_by_counting(words)
            assert len(features._WORD_SPREADS) <= max(bound, len(set(words)))
    finally:
        features._WORD_SPREADS_MAX = saved
        features._WORD_SPREADS.clear()


# a text each prechecked rule's regex matches (fuzzing rarely builds a tool catalogue)
PRECHECKED = ["solve 2+2 and explain.\nreasoning :  \n", "what is 2+2? answer:\t", "give a detailed step list",
              "rate the following response from 1 to 5", "generate 10 diverse questions about cats",
              "you can use these tools: search(query), calc(expression: str)"]


def test_every_precheck_passes_a_text_its_rule_matches():
    prechecked = [rule for rule in features._RULES if rule[3] is not None]
    assert len(prechecked) == len(PRECHECKED)
    for family, _, regex, _ in prechecked:
        texts = [text for text in PRECHECKED if regex.search(text)]
        assert texts, regex.pattern
        for text in texts:
            assert features._families_present(text) >> family & 1
            assert features._families_present(text) == families_reference(text)


_SECTION_WORDS = sorted(features._FOREIGN_JUDGED)[:40] + [
    "answer", "response", "reply", "output", "assistant", "said", "wrote", "solution", "Answer", "answers",
    ":", "：", " :", ": ", ":\n", "\n", "\n\n", " ", "\t", "[1]", "[12]", " [3]", "\n [2]", "x", "é", "_", "-", "\r"]
_section_text = st.lists(st.one_of(st.sampled_from(_SECTION_WORDS), st.sampled_from(_ODD), st.text(max_size=8)),
                         max_size=40).map("".join)


@settings(max_examples=1500, deadline=None)
@given(_section_text)
def test_answer_section_at_line_starts_is_its_definition(text):
    import re
    definition = re.compile(features.ANSWER_SECTION_PATTERN)
    assert bool(features._ANSWER_SECTION.search("\n" + text)) == bool(definition.search(text))


def test_searching_at_line_starts_refuses_what_a_newline_would_change():
    import pytest
    for pattern in (r"a|(^|\n)b", r"(^|\n)a|b", r"(^|\n)a|(^|\n)(^|b)", r"(^|\n)(?<=x)a", r"(^|\n)\Aa"):
        with pytest.raises(ValueError):
            features._at_line_starts(pattern)
    assert features._at_line_starts(r"(^|\n)[^a]:|(^|\n)(?<!\w)\[\d\]").search("\nx\n[1]")
