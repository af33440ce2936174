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
                "question: x\nanswer:", "final answer", "solution", "5 diverse"]
_piece = st.one_of(st.sampled_from(_TRIGGERS), st.sampled_from(_REGEX_WORDS),
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
