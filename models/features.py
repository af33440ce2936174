"""Per-event features: what the detectors see of a request. The prompt text stops here.

A fixed-size, deterministic summary: SimHash sketch of the content words (topic), a
template fingerprint (digits and quoted spans masked, ends kept), lexical signals of
extraction styles, length, params, timing and client metadata. Every text signal reads the
prompt through ``normalise.normalise`` (look-alike letters, invisible characters, fullwidth
and spaced-out letters undone, case-folded), so the tricks that keep a prompt readable to the
model do not hide its wording from the signals.

>>> from distillguard.models.events import parse_event
>>> ev = parse_event(b'{"schema":"llm.request.v1","event_id":"e","ts":"2026-02-01T00:00:00Z","api_key_id":"k",'
...                  b'"account_id":"a","model":"m","prompt":"Think step by step and show your reasoning: 2+2?"}')
>>> f = featurize(ev)
>>> f.style >= 0.5, 0 <= f.topic_bucket < 256
(True, True)
"""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from functools import reduce
from itertools import filterfalse
from operator import itemgetter, or_

import ahocorasick

from . import cues, multilingual
from .constants import ORDINARY_ANSWER_TOKENS
from .events import RequestEvent, parse_event
from .normalise import normalise, repair_words
from .tables import load, words

_WORD = re.compile(r"[a-z][a-z0-9']{2,}")
_DIGITS = re.compile(r"\d+")
_QUOTED = re.compile(r"\"[^\"]{0,200}\"|'[^']{0,200}'|`[^`]{0,200}`")

_TABLES = load("phrase_rules.toml")  # the phrase rules, cue words and stop words: data, read once
_STOP = frozenset(words(_TABLES["words"]["stop"]))

# Lexical signals of extraction styles (phrase_rules.toml says what each family and rule is):
# each rule is (literal triggers, regex or None) on lower-cased text; the regex runs only when
# one of its triggers is present.
STYLE_FAMILY_NAMES = ("reasoning", "grading", "benchmark", "coverage", "tool_use")  # the bits' order


def _expand(regex: str, fragments: dict[str, str]) -> str:
    for name, fragment in fragments.items():
        regex = regex.replace("{" + name + "}", fragment)
    return regex


def _compile_families(tables: dict) -> tuple[tuple[tuple[tuple[str, ...], "re.Pattern | None"], ...], ...]:
    fragments: dict[str, str] = {}
    for name, fragment in tables["fragments"].items():  # a fragment may use the ones before it
        fragments[name] = _expand(fragment, fragments)
    families = tables["family"]
    if tuple(f["name"] for f in families) != STYLE_FAMILY_NAMES:
        raise ValueError(f"phrase_rules.toml: families must be {STYLE_FAMILY_NAMES} in this order")
    def rule(r: dict) -> tuple[tuple[str, ...], "re.Pattern | None"]:
        return tuple(r["triggers"]), re.compile(_expand(r["regex"], fragments)) if "regex" in r else None
    return tuple(tuple(rule(r) for r in family["rules"]) for family in families)


_STYLE_FAMILIES = _compile_families(_TABLES)


# Paraphrase-tolerant reasoning elicitation: four groups of cue words (phrase_rules.toml,
# [process]); a prompt whose instruction zones use words of two or more groups asks for the
# process of answering. Two groups weigh like the tool-use family, three or more like a phrase rule.
# The same groups in other languages (cues.toml [process]), as normalise reads each word: Latin
# words fold to ASCII (read by _WORD), Cyrillic ones stay (read by _CYRILLIC_WORD). A word the
# English groups hold keeps its group.
_PROCESS_GROUPS = tuple(_TABLES["process"]["groups"])
_PROCESS_CUE = {**{normalise(word): group for groups in cues.PROCESS.values() for group, words in enumerate(groups)
                   for word in words},
                **{word: group for group, words in enumerate(_PROCESS_GROUPS) for word in words.split()}}
_PROCESS_WORDS = frozenset(_PROCESS_CUE)
# The words of Cyrillic text (normalise keeps it: lower case, ё and the Ukrainian letters kept)
_CYRILLIC_WORD = re.compile("[\u0430-\u044f\u0451\u0454\u0456\u0457\u0491]{3,}")
_PROCESS_WEIGHTS = (0.0, 0.0, 0.6, 0.85, 0.85)  # by the number of cue groups present


def process_elicitation(words) -> float:
    """Weight of the paraphrase-tolerant reasoning-elicitation family, from the words of a
    prompt's instruction zones (lower-cased, as ``_WORD`` finds them).

    >>> process_elicitation(_WORD.findall("walk me through the history of rome in detail."))
    0.6
    >>> process_elicitation(_WORD.findall("elaborate on each stage of your thinking before concluding."))
    0.85
    >>> process_elicitation(_WORD.findall("explain how tides work."))
    0.0
    """
    hits = _PROCESS_WORDS.intersection(words)
    if len(hits) < 2:
        return 0.0
    return _PROCESS_WEIGHTS[len({_PROCESS_CUE[w] for w in hits})]


# Paraphrase-tolerant grading (phrase_rules.toml, [judging]): a verdict or rework word and a
# word for the judged output in the instruction zones, and a section that holds the output.
# Other languages' words (cues.toml [judging]) join them as normalise reads each; their judged
# words also label the section that holds the output ("Respuesta del modelo: ...").
_FOREIGN_JUDGED = {normalise(word) for _, judged in cues.JUDGING.values() for word in judged}
_VERDICT_WORDS = frozenset(words(_TABLES["judging"]["verdict_words"])) | {
    normalise(word) for verdict, _ in cues.JUDGING.values() for word in verdict}
_JUDGED_WORDS = frozenset(words(_TABLES["judging"]["judged_words"])) | _FOREIGN_JUDGED
# Where a judged answer's section begins: a line that labels it ("Response:", "[1]"), in every
# language of the judged words. Every alternative starts a line ("(^|\n)"); the definition:
ANSWER_SECTION_PATTERN = _TABLES["judging"]["answer_section"] + r"|(^|\n)[^\n:：]{0,30}(?<!\w)(" + "|".join(
    sorted(map(re.escape, _FOREIGN_JUDGED), key=len, reverse=True)) + r")(?!\w)[^\n:：]{0,20}[:：][ \t]*(\n|\S)"
_LINE_START = "(^|\\n)"


def _top_level_alternatives(pattern: str) -> list[str]:
    """``pattern`` split at its top-level ``|`` (not inside a group or a character class, not
    escaped).

    >>> _top_level_alternatives("(^|x)a[|]b|(c|d)e"), _top_level_alternatives("[]|]a|[^]|]b")
    (['(^|x)a[|]b', '(c|d)e'], ['[]|]a', '[^]|]b'])
    """
    alternatives, depth, start, at = [], 0, 0, 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            at += 1  # (the escaped character is no operator)
        elif char == "[":  # a class ends at the first "]" after its first member ("[]|]", "[^]|]")
            at = pattern.index("]", at + (3 if pattern.startswith("[^", at) else 2))
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            alternatives.append(pattern[start:at])
            start = at + 1
        at += 1
    return alternatives + [pattern[start:]]


def _at_line_starts(pattern: str) -> "re.Pattern":
    """``pattern``, whose every top-level alternative begins with ``(^|\\n)``, as one
    "\\n(?:...)" to be searched in the text after a newline: a pattern that opens on a literal
    lets the regex engine skip from newline to newline, where the alternation was tried at every
    position (~26 -> ~9 us a long prompt; the same matches: tests/unit/models/test_fast_paths.py).
    Nothing after an alternative's ``(^|\\n)`` may tell the text's start from a newline: no other
    ``^`` or ``\\A`` outside a class, no lookbehind but ``(?<!\\w)`` (a newline is no word
    character, as nothing before the start is)."""
    alternatives = _top_level_alternatives(pattern)
    rests = [alternative[len(_LINE_START):] for alternative in alternatives]
    for alternative, rest in zip(alternatives, rests):
        outside_classes = re.sub(r"\\.|\[\^?\]?[^\]]*\]", "", rest.replace("(?<!\\w)", ""))
        if not alternative.startswith(_LINE_START) or "^" in outside_classes or "(?<" in outside_classes \
                or "\\A" in rest:
            raise ValueError(f"not an alternative of line starts that reads the same after a newline: {alternative!r}")
    return re.compile("\n(?:" + "|".join(rests) + ")")


_ANSWER_SECTION = _at_line_starts(ANSWER_SECTION_PATTERN)
_JUDGING_WEIGHT = 0.85
_CUE_WORDS = _PROCESS_WORDS | _VERDICT_WORDS | _JUDGED_WORDS


def _style_vocabulary(tables: dict) -> frozenset[str]:
    """The English words the style signals look for: every word of the phrase rules' triggers
    and regexes (their escapes such as ``\\b`` dropped first) and the cue words. A disguised
    word is read as one of these or not at all (``normalise.repair_words``)."""
    sources = [trigger for family in tables["family"] for rule in family["rules"] for trigger in rule["triggers"]]
    sources += [rule.get("regex", "") for family in tables["family"] for rule in family["rules"]]
    sources += list(tables["fragments"].values())
    found = {word for source in sources for word in re.findall(r"[a-z]{2,}", re.sub(r"\\[a-zA-Z]", " ", source))}
    return frozenset(found | {word for word in _CUE_WORDS if word.isascii() and word.isalpha()})


_STYLE_VOCABULARY = _style_vocabulary(_TABLES)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, ~0.4 us a
# field, and one of these is built for every event (benchmarks/decode.py). Treat it as
# immutable; unsafe_hash keeps it hashable by value, as frozen did.
@dataclass(slots=True, unsafe_hash=True)
class EventFeatures:
    """Everything the detectors use about one event. No text."""

    ts_ms: int
    style: float            # 0..1, share of extraction-style families present
    topic_bucket: int       # 0..255, SimHash bucket of the content words
    simhash: int            # 64-bit SimHash of the content words
    template_hash: int      # 64-bit fingerprint of the masked template
    prompt_chars: int
    content_words: int      # ASCII content words and other scripts' tokens (bigrams of Chinese)
    turn_words: int         # a follow-up's content words counted alike in every language (0: no follow-up)
    followup: bool          # a later turn of a conversation
    has_system: bool
    max_tokens: int
    n: int
    tools: int
    output_tokens: int      # -1 when the gateway did not report usage
    event_hash: int         # 32-bit hash of event_id, for duplicate detection
    families: int = 0       # bit i set: style family i present (see _STYLE_WEIGHTS); multilingual's bits above
    # the client's conversation claim, checked against the key's own past by the pipeline
    conversation: int = 0   # 32-bit hash of conversation_id (never 0 when there is one), 0 without
    turn: int = 0           # turn_index as claimed
    input_tokens: int = -1  # -1 when the gateway did not report usage
    latency_ms: int = 0     # the gateway's, 0 when unknown (ReadingPace)


def _h64(data: str) -> int:
    """A stable 64-bit hash (two CRC32s: fast, and the same in every process, unlike ``hash``)."""
    raw = data.encode("utf-8", "surrogatepass")
    return zlib.crc32(raw) | (zlib.crc32(raw, 0x9E3779B9) << 32)


# SimHash by big-integer lanes: each word's 64-bit hash is spread into 64 lanes of 16 bits
# (bit i -> lane i), so one ``sum`` of the words' spreads counts every bit position at once
# in C, and adding 2**15 - t to every lane sets a lane's top bit exactly when its count
# reached t. The same result as counting bits with numpy (a test checks), 2x faster on the
# 50-200 words of a prompt, where numpy's per-call overhead dominated.
_LANE = 16
_LANE_ONES = sum(1 << (_LANE * i) for i in range(64))
_BYTE_SPREAD = tuple(b"".join((b >> k & 1).to_bytes(_LANE // 8, "little") for k in range(8)) for b in range(256))
_BIT_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_MAX_WORDS = (1 << (_LANE - 1)) - 1  # a lane's count must stay under its top bit

# Word -> spread memo: words repeat (Zipf), and hashing dominated featurization. Bounded:
# cleared when full, which only costs time (the spread is a pure function of the word).
_WORD_SPREADS: dict[str, int] = {}
_WORD_SPREADS_MAX = 1 << 16


def _spread(word: str) -> int:
    """The word's 64-bit hash, bit i moved to the bottom of lane i."""
    return int.from_bytes(b"".join(map(_BYTE_SPREAD.__getitem__, _h64(word).to_bytes(8, "little"))), "little")


def _simhash(words: list[str]) -> int:
    """Bit i of the result: bit i of more than half of the words' hashes.

    >>> _simhash(["alpha"]) == _h64("alpha"), _simhash([])
    (True, 0)
    """
    if not words:
        return 0
    if len(words) > _MAX_WORDS:
        raise ValueError(f"at most {_MAX_WORDS} words")
    try:  # every word's spread memoised (most prompts): one pass in C
        counts = sum(map(_WORD_SPREADS.get, words))
    except TypeError:  # (a word not seen yet: its ``get`` is None)
        # Only the new words spread in Python (a set difference finds them in C), then the
        # one pass again: a per-word Python loop over the whole prompt cost ~100 us here.
        missing = set(words).difference(_WORD_SPREADS)
        if len(_WORD_SPREADS) + len(missing) > _WORD_SPREADS_MAX:
            _WORD_SPREADS.clear()
            missing = set(words)
        for word in missing:
            _WORD_SPREADS[word] = _spread(word)
        counts = sum(map(_WORD_SPREADS.__getitem__, words))
    at_least = len(words) // 2 + 1
    majority = ((counts + _LANE_ONES * ((1 << (_LANE - 1)) - at_least)) >> (_LANE - 1)) & _LANE_ONES
    return int(majority.to_bytes(64 * _LANE // 8, "little")[::_LANE // 8][::-1].translate(_BIT_DIGITS), 2)


def template_fingerprint(text: str) -> int:
    """Hash of the prompt's frame: its opening words with digits and quoted spans masked.

    Applications and scripted campaigns put their instruction first and the variable
    material after it, so the opening frame identifies the template.

    >>> a = template_fingerprint("Classify ticket 123 into billing, technical or other: my card was charged twice")
    >>> a == template_fingerprint("Classify ticket 98 into billing, technical or other: the app crashes")
    True
    """
    return _template_hash(normalise(text[:MAX_PROMPT_CHARS])[:400])


def _template_hash(head: str) -> int:
    """``template_fingerprint`` of a prompt's first 400 characters, normalised."""
    if '"' in head or "'" in head or "`" in head:  # (the alternation tried at every position cost ~5 us)
        head = _QUOTED.sub("\"…\"", head)
    # the first 8 words (whitespace runs as one), then their digits masked: a digit run holds
    # no whitespace, so masking after the split is masking before it, on ~50 characters, not 400
    return _h64(_DIGITS.sub("#", " ".join(head.split(None, 8)[:8])))


# reasoning, grading, benchmark format, dataset generation, tool-use traces (the phrase
# families); then the paraphrase-tolerant cues: PROCESS_ELICITATION, JUDGING
_STYLE_WEIGHTS = (1.0, 1.0, 0.35, 0.8, 0.7)
BENCHMARK_FORMAT = 1 << 2
PROCESS_ELICITATION = 1 << len(_STYLE_WEIGHTS)
JUDGING = PROCESS_ELICITATION << 1
_STYLE_BITS = (JUDGING << 1) - 1  # the families; the bits above say which signal fired (multilingual)
# A benchmark-format prompt answered past an ordinary answer's length: the requester let the model reason and kept
# the reasoning. An eval wants the letter; this is a harvest of worked solutions.
_REASONING_HARVEST_STYLE = 0.7


def answered_style(f: "EventFeatures") -> float:
    """The event's extraction style in the light of its answer (what the requester got back).

    >>> import dataclasses
    >>> mc = featurize_text("(A) 4 (B) 5 (C) 6 (D) 7. Which is prime?")
    >>> answered_style(dataclasses.replace(mc, output_tokens=1)), answered_style(dataclasses.replace(mc, output_tokens=900))
    (0.35, 0.7)
    """
    if f.families & _STYLE_BITS == BENCHMARK_FORMAT and f.output_tokens >= ORDINARY_ANSWER_TOKENS:
        return _REASONING_HARVEST_STYLE
    return f.style


def _trigger_automaton() -> "ahocorasick.Automaton":
    """Every rule's triggers in one Aho-Corasick automaton, each trigger's value the bit mask
    of the rules it opens (bit = rule's place in ``_RULES``). Testing the triggers one by one
    with ``in`` cost ~25 us a prompt (a Python loop over ~90 substring searches); one pass of
    the automaton in C finds them all (``benchmarks/replay_speed.py``)."""
    masks: dict[str, int] = {}
    for bit, (_, triggers, _, _) in enumerate(_RULES):
        for trigger in triggers:
            masks[trigger] = masks.get(trigger, 0) | 1 << bit
    automaton = ahocorasick.Automaton()
    for trigger, mask in masks.items():
        automaton.add_word(trigger, mask)
    automaton.make_automaton()
    return automaton


# What some rules' regexes cannot match without, checked in C before the regex scans every
# position of the prompt (their triggers are common words: the regexes of these six cost
# ~20 us a prompt on dev-s1, where they match a few prompts in a thousand). Each rule is named
# by a fragment of its regex. ``end``: the regex matches only at the end (``$`` without
# MULTILINE, after nothing but whitespace and at most one colon), so the text stripped of
# those must end with one of the words. ``needs``: groups of literals of the regex, one of
# each group a substring (tests/unit/models/test_fast_paths.py checks the rules against the
# plain loop on fuzzed text).
_PRECHECKS = {
    r"(reasoning|rationale|step-by-step reasoning|thoughts?|let's think)\s*:?\s*$":
        ("end", ("reasoning", "rationale", "thought", "thoughts", "let's think")),
    r"\banswer:\s*$": ("end", ("answer",)),
    r"(detailed|full|complete|thorough) (step|": ("needs", (("step", "reasoning", "derivation", "worked solution"),)),
    r"(rate|grade|score|evaluate|assess)\b.{0,60}": ("needs", (("response", "answer", "output", "completion", "essay",
                                                                "solution"),)),
    r"(examples|questions|instructions|tasks|prompts|samples)": ("needs", (("examples", "questions", "instructions",
                                                                           "tasks", "prompts", "samples"),)),
    r"(tools?|functions?|actions?|apis?|commands?|operations?)": ("needs", (("(",), (")",), (":",))),
}


def _precheck(regex: "re.Pattern | None") -> tuple | None:
    named = [check for fragment, check in _PRECHECKS.items() if regex is not None and fragment in regex.pattern]
    return named[0] if named else None


# (family index, triggers, regex or None, precheck or None) of every rule, in the families' order
_RULES = tuple((i, triggers, regex, _precheck(regex))
               for i, family in enumerate(_STYLE_FAMILIES) for triggers, regex in family)
assert sum(rule[3] is not None for rule in _RULES) == len(_PRECHECKS), "a precheck names no rule, or two"
_TRIGGERS = _trigger_automaton()
_MASK_OF_MATCH = itemgetter(1)  # an automaton match is (end position, mask)


def _families_present(lower: str, skip: int = 0) -> int:
    """Bit i set: a rule of style family i matches ``lower`` (a rule matches when one of its
    triggers is a substring and its regex, if it has one, is found). Families in ``skip``
    are not looked for (and not set)."""
    opened = reduce(or_, map(_MASK_OF_MATCH, _TRIGGERS.iter(lower)), 0)  # (in C: no bytecode per trigger found)
    found, end = 0, None
    while opened:
        low = opened & -opened
        opened ^= low
        family, _, regex, precheck = _RULES[low.bit_length() - 1]
        if (found | skip) >> family & 1:
            continue
        if precheck is not None:
            kind, literals = precheck
            if kind == "end":
                if end is None:
                    end = _stripped_end(lower)
                if not end.endswith(literals):
                    continue
            elif not all(any(literal in lower for literal in group) for group in literals):
                continue
        if regex is None or regex.search(lower):
            found |= 1 << family
    return found


def _stripped_end(text: str) -> str:
    """``text`` without its trailing whitespace, one colon and the whitespace before it
    (str.rstrip strips what ``\\s`` matches: both are Python's Unicode whitespace)."""
    text = text.rstrip()
    return text[:-1].rstrip() if text.endswith(":") else text


def _style(text: str) -> tuple[float, int]:
    """(style, families) of a raw text: the definition ``featurize`` computes faster."""
    return _style_read(normalise(text))


def _style_read(norm: str, words: list[str] | None = None) -> tuple[float, int]:
    """``_style_normalised``, and again on a second reading of the instruction zones where
    disguised words are put back (leetspeak, signs inside words, words joined by underscores:
    ``normalise.repair_words``): families found in either count. Most prompts have no
    disguised word and pay for one byte-class search of their zones.

    >>> _style_read(normalise("3xpl41n y0ur r34s0n1ng st3p by st3p.")) == _style_read("explain your reasoning step by step.")
    True
    """
    zones = _instruction_zones(norm)
    style, families = _style_normalised(norm, words, zones)
    rejoined = _rejoined_words(zones)
    repaired = repair_words(zones if rejoined is None else rejoined, _STYLE_VOCABULARY)
    second = rejoined if repaired is None else repaired
    if second is None:
        return style, families
    second_style, second_families = _style_normalised(second, zones=second)
    return max(style, second_style), families | second_families


# Runs of spaces and tabs (NFKC made every other space a plain one): the phrase rules write one
_SPACE_RUN = re.compile(r"[ \t]{2,}|\t")


def _instruction_zones(norm: str) -> str:
    r"""Where a prompt's instructions sit: its start and its end (the middle is pasted material);
    the whole of a short prompt. Runs of spaces or tabs read as one space: the phrase rules
    write words one space apart, and ``step  by\tstep`` is the cheapest way around them (most
    prompts have no run and pay for two substring tests).

    >>> _instruction_zones("think  step by\tstep")
    'think step by step'
    """
    zones = norm if len(norm) <= 800 else norm[:500] + "\n" + norm[-300:]
    return _SPACE_RUN.sub(" ", zones) if "  " in zones or "\t" in zones else zones


# Four or more lines of one or two words each (blank lines between allowed): a sentence broken
# into lines so that no phrase is on one. A word: letters or a number, a bracket or a mark
# before it, up to two signs after it but quotes. Code and data (identifiers with digits,
# quoted keys, operators) are no words, and their lines are not read again; option lists are
# (2.6 % of dev-s1's prompts are read twice). Looked for where three such lines follow a line
# break (a search from a literal), then exactly: ~3 us a prompt with 3+ line breaks (45 %).
_LINE_WORD = r"[(\[*_-]?(?:[^\W\d_]+|\d+)[^\w\s\"']{0,2}"
_LINE_WORDS = rf" ?{_LINE_WORD}(?: {_LINE_WORD})? ?"
_WORD_LINES_HINT = re.compile(r"\n" + _LINE_WORDS + r"\n+" + _LINE_WORDS + r"\n")
_WORD_LINES = re.compile(r"(?m)^" + _LINE_WORDS + r"(?:\n+" + _LINE_WORDS + r"){3,}$")
# A sign or symbol standing alone between words three times running (" 🔹 ", " | ", " ~ ")
_SYMBOL_GAPS = re.compile(r" [^\w\s]{1,4}(?: \S+ [^\w\s]{1,4}){2,} ")
_SYMBOL_GAP = re.compile(r"(?<= )[^\w\s]{1,4} ")


def _rejoined_words(zones: str) -> str | None:
    r"""The instruction zones with words that were set apart put back in a line, for a second
    reading (None when none were): a word or two a line (``think\nstep by\nstep``), or a sign or
    emoji between every two words (``think 🔹 step 🔹 by 🔹 step``). A model reads either as the
    plain sentence; the phrase rules did not. Only read in addition to the zones as they are
    (joining lines can hide a line-start rule's match, a list of one-word lines is ordinary),
    so ordinary text can gain nothing but matches it spells once joined.

    >>> _rejoined_words("before answering,\nthink step\n\nby\nstep.")
    'before answering, think step by step.'
    >>> _rejoined_words("think 🔹 step 🔹 by 🔹 step | then answer")
    'think step by step then answer'
    >>> _rejoined_words("a list:\n- one thing\n- another") is None
    True
    """
    text = zones
    if text.count("\n") >= 3 and _WORD_LINES_HINT.search(text) and \
            (lines := _WORD_LINES.sub(_one_line, text)) != text:
        text = lines
    if _SYMBOL_GAPS.search(text):
        text = _SYMBOL_GAP.sub("", text)
    return None if text is zones else text


def _one_line(match: re.Match) -> str:
    return " ".join(match.group(0).split())


def _style_normalised(norm: str, words: list[str] | None = None, zones: str | None = None) -> tuple[float, int]:
    """``norm``: the text as ``normalise`` returns it; ``words``: the words ``_WORD`` finds in
    the whole of it, when the caller has them; ``zones``: its ``_instruction_zones``, when the
    caller has them."""
    whole = norm  # where a judged answer's section is looked for
    lower = _instruction_zones(norm) if zones is None else zones
    # the words of the instruction zones: the caller's when the whole text is instruction zone
    zone_words = words if words is not None and lower is whole else None
    families, best, present = 0, 0.0, 0
    if words is None:  # the zones' words, needed below anyway: found once
        zone_words = _WORD.findall(lower)
    # the same reasoning, grading and item-format families in other languages and scripts
    translated = multilingual.families(lower, words if words is not None else zone_words)
    phrased = translated | _families_present(lower, translated)
    for i, weight in enumerate(_STYLE_WEIGHTS):
        if phrased >> i & 1:
            families |= 1 << i
            best = max(best, weight)
            present += 1
    style = min(1.0, best + 0.1 * (present - 1)) if present else 0.0
    families |= translated & ~multilingual.FAMILY_BITS  # which language-independent signal fired
    # The paraphrase-tolerant cues overlap the phrase rules (most phrased prompts hit them
    # too): they set a floor, and do not count as a further family. Under two cue words in
    # the whole text, none of them can be present: no tokenizing of the zones then.
    ascii_text = lower.isascii()
    if zone_words is None:
        if words is not None and ascii_text and len(_CUE_WORDS.intersection(words)) < 2:
            return style, families
        zone_words = _WORD.findall(lower)
    hits = _CUE_WORDS.intersection(zone_words)
    if not ascii_text:
        hits = hits.union(_CUE_WORDS.intersection(_CYRILLIC_WORD.findall(lower)))
    if len(hits) < 2:
        return style, families
    process = process_elicitation(hits)
    if process:
        families |= PROCESS_ELICITATION
        style = max(style, process)
    if not hits.isdisjoint(_VERDICT_WORDS) and not hits.isdisjoint(_JUDGED_WORDS) and \
            _ANSWER_SECTION.search("\n" + whole[:6000]):
        families |= JUDGING
        style = max(style, _JUDGING_WEIGHT)
    return style, families


def style_score(text: str) -> float:
    """How much the text reads like extraction, in [0, 1]: the strongest family present,
    plus a little for each further family.

    >>> style_score("What's a good pasta recipe?")
    0.0
    >>> style_score("(A) 4 (B) 5 (C) 6. Answer with the letter only.") < style_score("Show your reasoning step by step.")
    True
    """
    return _style(text)[0]


MAX_PROMPT_CHARS = 20_000
# The text normalise_prompt read last and its normal form, as one tuple (swapped whole, so a
# reader never pairs one text with another's form).
_last_normalised: tuple[str, str] = ("", "")
# The normal form featurize read last and its content words (material_sketch's; swapped whole)
_last_words: tuple[str, list[str]] = ("", [])


def normalise_prompt(text: str) -> str:
    """``normalise(text)``, remembered for the last text: the link record of an event
    (``clusters.records.tail_frame``) normalises its prompt's last 800 characters, the whole prompt
    that ``featurize`` normalised just before when it is shorter (most are): ~8 us an event.

    >>> normalise_prompt("Ｓｔｅｐ by step") == normalise("Ｓｔｅｐ by step") == normalise_prompt("Ｓｔｅｐ by step")
    True
    """
    global _last_normalised
    last_text, last_norm = _last_normalised
    if text == last_text:
        return last_norm
    norm = normalise(text)
    _last_normalised = (text, norm)
    return norm


# Tokens a material sketch reads at most (a 20,000-character prompt has fewer words; Chinese
# text gives a bigram a character).
MATERIAL_TOKENS = 4_000


def _content_words(norm: str) -> list[str]:
    """The words of a normal form but stop words (in C: no per-word bytecode)."""
    return list(filterfalse(_STOP.__contains__, _WORD.findall(norm)))


def material_sketch(prompt: str) -> int:
    """A 64-bit SimHash of *all* a prompt's content words (and other scripts' tokens, up to
    ``MATERIAL_TOKENS``), where ``EventFeatures.simhash`` reads its first 200: what a
    transformation is given (``models.products``). The same block of text in every prompt gives
    the same sketch whatever its place or its paragraphs' order; a new document, another.
    Asked only of a transformation's prompt, after ``featurize`` read its words (remembered:
    finding them again cost ~175 us on a 4,800-character prompt): one sum, ~80 us on such an
    English prompt, ~290 us on a Chinese-heavy one (its bigrams found and spread).

    >>> a, b = "First worked example. Second worked example.", "Second worked example. First worked example."
    >>> material_sketch(a) == material_sketch(b), material_sketch(a) == material_sketch("A letter to translate.")
    (True, False)
    """
    norm = normalise_prompt(prompt[:MAX_PROMPT_CHARS])
    last_norm, words = _last_words
    if norm is not last_norm:  # (another prompt than featurize's last)
        words = _content_words(norm)
    if not norm.isascii():
        words = words + multilingual.script_tokens(norm, MATERIAL_TOKENS)
    return _simhash(words[:MATERIAL_TOKENS])


def featurize(event: RequestEvent) -> EventFeatures:
    global _last_words
    text = event.prompt[:MAX_PROMPT_CHARS]
    norm = normalise_prompt(text)
    words = _content_words(norm)
    _last_words = (norm, words)  # (material_sketch's, for the same prompt)
    # a follow-up's length as a person's few words are told, alike in every language
    turn_words = multilingual.turn_words(text, norm, words, len(_WORD.findall(norm)) - len(words)) \
        if event.turn_index > 0 else 0
    if not norm.isascii():  # Chinese has no words _WORD finds: character bigrams instead
        words = words + multilingual.script_tokens(norm, 100)  # (each new bigram costs a hash: 100 suffice)
    simhash = _simhash(words[:200])
    if event.system_prompt:
        style, families = _style_read(norm + "\n" + normalise(event.system_prompt[:2000]))
    else:
        style, families = _style_read(norm, words)
    return EventFeatures(
        ts_ms=event.ts_ms,
        style=style,
        families=families,
        topic_bucket=(simhash >> 56) & 0xFF,
        simhash=simhash,
        template_hash=_template_hash(norm[:400]),
        prompt_chars=len(event.prompt),
        content_words=len(words),
        turn_words=turn_words,
        followup=event.turn_index > 0,
        has_system=bool(event.system_prompt),
        max_tokens=event.max_tokens or 0,
        n=event.n or 1,
        tools=event.tools or 0,
        output_tokens=-1 if event.output_tokens is None else event.output_tokens,
        event_hash=_h64(event.event_id) & 0xFFFFFFFF,
        conversation=(zlib.crc32(event.conversation_id.encode("utf-8", "surrogatepass")) or 1)
        if event.conversation_id else 0,
        turn=event.turn_index,
        input_tokens=-1 if event.input_tokens is None else event.input_tokens,
        latency_ms=event.latency_ms or 0,
    )


def featurize_text(prompt: str, output_tokens: int = -1) -> EventFeatures:
    """Features of a bare prompt (docs, tests and what-if checks; no event needed)."""
    doc = {"schema": "llm.request.v1", "event_id": "text", "ts": "2026-01-01T00:00:00Z", "api_key_id": "k",
           "account_id": "a", "model": "m", "prompt": prompt}
    if output_tokens >= 0:
        doc["usage"] = {"input_tokens": 0, "output_tokens": output_tokens}
    return featurize(parse_event(json.dumps(doc).encode()))
