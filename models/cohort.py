"""Campaigns that share nothing but content: a cohort detector over young keys.

A content cohort is many keys, each on its own account, payment method, network and client,
enrolled hours apart over days, each sending 10-40 plainly worded requests: every key is
under every per-key minimum, and no link of :class:`~distillguard.models.clusters.ClusterDetector`
joins them. What they share is the work: together they sweep one item set (an exam bank, a
problem collection), each a disjoint slice of it.

What an attacker who reads this cannot easily change without giving up the harvest:

* **the accounts are young** (a cohort of thousands of accounts is bought or made for it;
  ``young_ms``), the keys' answers are long (``min_harvest_tokens``: the teacher signal is
  what they are there for), and each key keeps to the item set: ``min_family_share`` of its
  requests of one item kind (answer options, an answer label, math, code), or
  ``min_free_form_share`` of them free of options and labels (instructions, questions,
  problems: the shape of ordinary chat too) and then ``min_item_length_share`` of them
  item-sized, where a person's chat is mostly short turns (or sent at machine rate or on a
  clock's beat, ``max_clock_variation``: short general instructions one after another, or
  hours apart to the minute all day and night, which no person chatting does);
* **the content family is the item's shape, not its wording**: the script it is written in
  and its kind (``member_family`` of ``content_family``). Rewording an item keeps its shape;
  changing the shape changes the data harvested;
* **many such keys arrive in one family within days**: ``min_members`` or more in a
  free-form family, ``min_item_members`` in a family of an item's shape (options, an answer
  label, math, code: few ordinary young users keep to one) (and
  ``baseline_ratio`` times the family's own rate of such keys outside incidents) whose first request
  fell within ``window_ms``, while ordinary young users of a family arrive a few a day and
  mostly chat (dev-s1: 23 young keys with 8+ requests of one family and long answers, over
  7 days and all families);
* **in a free-form family, the members are about one thing**: one item set has one
  vocabulary, which biases the bits of the prompts' SimHash alike; each member's prompts
  must be likelier under the wave's profile (the other recent members' bit rates) than under
  ordinary traffic's (each established key's first ``background_key_events`` requests:
  what ordinary keys ask about, not what a few busy ones send): ``min_content_affinity``
  (mean log ratio per prompt). Young users who keep to long free-form requests while a wave runs are
  about what everyone asks about, and are not named. To escape it a cohort must ask about
  what ordinary users ask about, which is not the item set it came to harvest. Several
  cohorts sweeping one family at once make the wave's profile a mix that each member fits
  only partly: a member may fit its ``neighbours`` nearest recent members instead, by the
  higher ``min_neighbour_affinity``, or ``min_machine_neighbour_affinity`` when it sent its
  slice at machine rate (most gaps under ``machine_gap_ms``) or on a timer's beat (gaps that
  vary by under ``max_paced_variation``, however long), which no person writing long
  requests does, or when it re-sent items that members already named in the incident sent
  first (``min_items_from_named``: it draws on the set the incident swept); a machine-paced
  member that did not fit is judged again as the wave grows (``rejudge_growth``): it joined
  before most of its own cohort;
* **a cohort's first members trickle in**: the wave is counted around the member that opens
  the incident; members that began within ``window_ms`` before its earliest member are named
  too if judged as a mature key is (nearly every answer long, the closer content fit);
* **camouflage costs the probation**: a young key that keeps to an item shape for only
  ``min_partial_share`` of its requests (its slice interleaved with other requests) is a
  member only if its content fits the wave as a free-form member's must;
* **a mixed set is a family too**: a sweep of a set that mixes item shapes and scripts (a
  capability sweep) dealt to its heads in turn gives each head the same mix, and no one
  family: a machine-paced key that keeps to none, ``min_mixed_share`` of whose requests carry
  answer options or an answer label, is a member of ``mixed-items`` on the same probation;
* **an item set's items open alike**: in a few of the set's ways ("You are a ...", "Imagine
  you are ..."), whatever each is about; once a family's incident is open, a member's
  distinct openings fit its profile too (``opening_weight``, ``_opening_fit``). Rewording
  every item's opening costs a pass over the set;
* **their items do not overlap**: a cohort splits one set (the share of a member's requests
  that another key sent already, ``max_overlap``); many users re-sending one popular
  benchmark, or an evaluation re-run, overlap.

Account maturity is no free pass: a key of a mature account never counts toward a wave of
young keys, but one that sweeps like a member on its first requests (the link stage forwards
every key's first ``FIRST_KEY_EVENTS``, for this detector only: ``min_mature_records`` of them,
nearly every answer at harvest length, none of its items another key's) is a *mature member*:
named in the family's open incident (``cohort_mature_members``) if its prompts fit the wave's
profile closely (``min_mature_affinity``, judged again on twice as many prompts by a bar lower
by the square root of 2). An evaluation account re-running a benchmark beside a wave gets
short graded answers or sends items other keys sent before, and is not named.
A campaign that buys aged accounts for every head has no young wave to join: mature members
alone make a wave (``_mature_wave``) when more *accounts* than ``min_members`` and than
``baseline_ratio`` times the family's history of mature members began within ``window_ms``
(one customer's many keys are one account), and ``min_members`` accounts of them fit one
another closely (``_mature_fits``): the mature members' profile by the mature bar; in a
free-form family also their ``neighbours`` nearest by ``min_mature_neighbour_affinity``, or,
for a member that sent at machine rate, its nearest among those that did too by
``min_mature_machine_neighbour_affinity`` (judged once); once the incident is open, its named
members' profile by the mature bar (the campaign's content, undiluted by old users), or, in a
free-form family, its ``neighbours`` nearest named members by ``min_named_neighbour_affinity``
(several campaigns sweeping one family at once make a named profile that fits none of them).
A mature key whose first requests came on a rotation's beat (minutes apart, to the second:
``_on_beat``) is judged as a young key instead: a hydra that buys aged accounts hands each head
its requests in turn. Such keys count toward waves of members on a timer's beat only. Such a
wave (young keys on a beat count too) is judged against the family's history of members on a
beat, not of its people, and names its members on a beat only: in a family busy with ordinary
young users, a hydra's heads on its rotation's beat stand out, and the people beside them
(a quick session of chat among them) are not named.

One incident per family wave names every member, also members that each sent only 10-40
requests; re-sent (an update, never a new page) as members join. Severity is ``warning``,
``critical`` only with ``critical_members`` or more members. Members whose own records show a
real product's evidence (``LinkRecord.product``: a developer's coding agent, an app) are left
out of a paging alert and held at ``info`` when all are such (``models.exculpation``). The detector sees link records
(no text: a family code, an item hash and a SimHash, see ``LinkRecord``); bounded in keys,
families, members and items.

>>> det = CohortDetector(min_members=3, min_item_members=3, min_key_events=4)
>>> from distillguard.models.clusters import LinkRecord
>>> day = 86_400_000
>>> alerts = []
>>> for k in range(4):
...     for i in range(5):
...         rec = LinkRecord(f"k{k}", f"a{k}", k * 3_600_000 + i * 60_000, 0.0, 0, 0, output_tokens=600,
...                          account_created_ms=-day, family=content_family("Q?\\n(A) 1\\n(B) 2"),
...                          item=k * 100 + i, key_events=i + 1)
...         alerts += det.learn_one(rec)
>>> alerts[0]["alert_id"], alerts[0]["api_key_ids"], alerts[-1]["api_key_ids"]
('cluster:cohort-latin-options-19700101', ['k0', 'k1', 'k2'], ['k0', 'k1', 'k2', 'k3'])
"""
from __future__ import annotations

import math
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from ..contracts.alert import Alert, Severity
from ..contracts.alert import iso_ms as _iso  # the one time format of every record
from ..errors import ConfigError
from .constants import DAY_MS, MIN_HARVEST_TOKENS
from .exculpation import PENDING, excused_products, product_cap, shows_product

# An account this young at the key's event is a cohort candidate (the key's request is
# forwarded to the cluster detector by ``link_record`` until ``MAX_KEY_EVENTS``).
YOUNG_MS = 14 * DAY_MS
MAX_KEY_EVENTS = 64
# Every key's first requests are forwarded too, whatever its account's age: a mature member
# (an aged account bought for the campaign) is judged on them (``min_mature_records`` and
# again on twice as many), not on the few sampled records of a paying key (1st, 2nd, 4th, 8th:
# a 4-prompt sketch, too noisy to tell a member from a person, and none at all of a free key).
FIRST_KEY_EVENTS = 16



def young_account(ts_ms: int, account_created_ms: int | None, young_ms: int = YOUNG_MS) -> bool:
    """Whether the account was younger than ``young_ms`` at ``ts_ms`` (unknown: not young)."""
    return account_created_ms is not None and 0 <= ts_ms - account_created_ms < young_ms


_SCRIPTS = ("latin", "cyrillic", "cjk", "rtl", "other")
_SHAPES = ("prose", "options", "answer-label", "math", "code", "question")
_BANDS = ("short", "long")
# Two or more lines that start like answer options: (A) / A. / 1) / - / Б) ...
_OPTION_LINE = re.compile(r"(?m)^\s*(?:\(?[A-Ea-e1-5][\).:：、]|[-•*]|\(?[АБВГДабвгд][\).])\s*\S")
# A prompt that ends on a short label for the model to fill in, on its own line or after a
# sentence: "Answer:", "Lösung:", "答案："
_TRAILING_LABEL = re.compile(r"(?:\n|^|[.。?？!！])\s*[^\n.。?？!！]{0,24}[:：]\s*$")
_MATH_CHAR = re.compile(r"[0-9+\-=*/^\\$]")
_CODE_CHAR = re.compile(r"[{};()\[\]<>]")
# Letters of each script but "other" (counted by regex: C loops, not Python ones).
_SCRIPT_LETTERS = (re.compile(r"[A-Za-z\u00c0-\u024f]"), re.compile(r"[\u0400-\u052f]"),
                   re.compile(r"[\u3040-\u9fff\uac00-\ud7af\uff66-\uff9f]"), re.compile(r"[\u0590-\u06ff]"))


def _script(text: str) -> int:
    """The dominant script of the first 300 characters' letters (index into _SCRIPTS)."""
    head = text[:300]
    if head.isascii():
        return 0  # the common case
    counts = [len(rx.findall(head)) for rx in _SCRIPT_LETTERS]
    other = sum(map(str.isalpha, head)) - sum(counts)  # (map: no bytecode per character)
    counts.append(other)
    return max(range(len(counts)), key=counts.__getitem__) if any(counts) else len(_SCRIPTS) - 1


def _shape(text: str) -> int:
    """The item's shape, the same in every language (index into _SHAPES)."""
    head = text[:1500]
    if head.count("\n") >= 2 and len(_OPTION_LINE.findall(head)) >= 2:
        return 1
    tail = text[-40:]
    if (":" in tail or "：" in tail) and _TRAILING_LABEL.search(tail):
        return 2
    n = len(head) or 1
    if len(_MATH_CHAR.findall(head)) > 0.08 * n:
        return 3
    if len(_CODE_CHAR.findall(head)) > 0.04 * n:
        return 4
    if text.rstrip()[-1:] in ("?", "？", "؟"):
        return 5
    return 0


def content_family(text: str, answer_format: bool = False) -> int:
    """A content family code: script x shape x length band; robust to rewording an item.

    ``answer_format``: the prompt tells the model how to give its answer (the benchmark-format
    family of the style rules, in every language they read: "answer with the letter only",
    "final answer", "Antworte nur mit dem Buchstaben"). A free-form prompt with such an
    instruction carries the ``ANSWER_INSTRUCTED`` flag: it is free-form as before, and counts
    toward its script's answer-label kind too (``CohortDetector``: a cohort whose wrapper
    alternates a trailing "Answer:" with "answer with the letter only" keeps to answer labels).

    >>> family_name(content_family("Which is prime?\\nA) 4\\nB) 7\\nC) 9"))
    'latin-options-short'
    >>> family_name(content_family("次の文を読んで答えなさい。" * 10 + "答案："))
    'cjk-answer-label-long'
    >>> family_name(content_family("Sort a list in Python. Answer with the letter only.", answer_format=True))
    'latin-prose-short-answer-instructed'
    """
    band = 0 if len(text) < 100 else 1
    shape = _shape(text)
    family = (_script(text) * len(_SHAPES) + shape) * len(_BANDS) + band
    return family | ANSWER_INSTRUCTED if answer_format and _KIND_OF_SHAPE[shape] == 0 else family


# What a member keeps to: the script and the item's kind, not its length band, and one kind
# for the free-form shapes (prose, question). An item set of free-form instructions and
# questions (alpaca-like) mixes statements and questions, short and long: the fine family split
# such a member's requests over four families, and it kept to none (a plain cohort was missed).
_KINDS = ("free-form", "options", "answer-label", "math", "code")
_KIND_OF_SHAPE = (0, 1, 2, 3, 4, 0)  # index into _KINDS per index into _SHAPES
_ANSWER_LABEL_KIND = _KINDS.index("answer-label")
# A flag above every family code (at most 59): a free-form prompt that instructs the answer's
# format (content_family). Codes without it are those of every earlier worker.
ANSWER_INSTRUCTED = 1 << 6


def member_family(family: int) -> int:
    """The family a member keeps to: ``family``'s script and kind (free-form: prose or question).

    >>> names = {member_family_name(member_family(content_family(t))) for t in
    ...          ("Give three tips for staying healthy.", "What is the capital of France?",
    ...           "Write a short story about a lighthouse keeper who finds a message in a bottle, in 200 words.")}
    >>> names
    {'latin-free-form'}
    """
    rest = (family & ~ANSWER_INSTRUCTED) // len(_BANDS)
    script, shape = divmod(rest, len(_SHAPES))
    return script * len(_KINDS) + _KIND_OF_SHAPE[shape]


def member_family_name(family: int) -> str:
    """A member family's name, as incidents show it.

    >>> member_family_name(member_family(content_family("Which?\\nA) 4\\nB) 7"))), member_family_name(MIXED_ITEMS)
    ('latin-options', 'mixed-items')
    """
    if family == MIXED_ITEMS:
        return "mixed-items"
    script, kind = divmod(family, len(_KINDS))
    return f"{_SCRIPTS[script]}-{_KINDS[kind]}" if 0 <= script < len(_SCRIPTS) else f"family{family}"


# The member family of a key that keeps to no one family, a share of whose requests are items
# (answer options or an answer label, any script): past every script's codes, of the options
# kind (not free-form, not unlabelled).
MIXED_ITEMS = len(_SCRIPTS) * len(_KINDS) + _KINDS.index("options")
_LABELLED_KINDS = (_KINDS.index("options"), _ANSWER_LABEL_KIND)


def _is_free_form(family: int) -> bool:
    """Whether a member family is free-form (prose or question): the shape of ordinary chat."""
    return family % len(_KINDS) == 0


def _of_no_one_shape(family: int) -> bool:
    """Whether a member family is no one item shape: free-form (the shape of ordinary chat) or
    ``MIXED_ITEMS`` (a mix of shapes). Its waves need ``min_members``, and its unfit
    machine-paced members are judged again as the wave grows."""
    return _is_free_form(family) or family == MIXED_ITEMS


def _unlabelled(family: int) -> bool:
    """Whether a member family's items carry no answer options or answer label."""
    return _KINDS[family % len(_KINDS)] in ("free-form", "math", "code")


def _add_bits(counts, simhash: int) -> None:
    """Count each set bit of a 64-bit SimHash into ``counts`` (64 counters)."""
    while simhash:
        low = simhash & -simhash
        counts[low.bit_length() - 1] += 1
        simhash ^= low


def _is_long(family: int) -> bool:
    """Whether a content family's band is item length (``content_family``'s long band)."""
    return family % len(_BANDS) == 1


def family_name(family: int) -> str:
    rest, band = divmod(family & ~ANSWER_INSTRUCTED, len(_BANDS))
    script, shape = divmod(rest, len(_SHAPES))
    if not 0 <= script < len(_SCRIPTS):
        return f"family{family}"
    instructed = "-answer-instructed" if family & ANSWER_INSTRUCTED else ""
    return f"{_SCRIPTS[script]}-{_SHAPES[shape]}-{_BANDS[band]}{instructed}"


# The opening of a prompt: its first two runs of letters (digits, signs and spacing left out),
# cased alike. One item set opens its items in few ways ("You are a ...", "Imagine you are",
# "Write a ...", "Which of the following"), whatever each is about; a person's chat opens in
# every way there is. A key's sketch keeps, of each of its sketched prompts, the opening's
# bucket in each of two hashes (OPENINGS buckets each: _opening_buckets); a prompt's opening
# fits a profile by the lesser of its two buckets' fits, so that an opening of its own that
# shares a bucket with a frequent one of the wave's (one hash, 64 buckets: a casual key was
# named at critical on content-cohort-aged so) does not fit unless both hashes say it does.
# (one match of the first two runs of letters: 0.6 us, where findall over the 200 characters took 9)
_OPENING_LETTERS = re.compile(r"[\W\d_]*([^\W\d_]+)(?:[\W\d_]+([^\W\d_]+))?")
OPENINGS = 256
# A script written without spaces (Chinese, Japanese): a run of letters is a whole clause,
# and its first characters (about two words) open it.
_UNSPACED_SCRIPT = re.compile(r"[\u3040-\u9fff\uf900-\ufaff]")
_UNSPACED_OPENING = 4


def prompt_opening(normalised: str) -> int:
    """A 32-bit hash of the prompt's opening: its first two runs of letters, casefolded. Give it
    the normalised prompt (``features.normalise_prompt``): look-alike letters, zero-width and
    fullwidth characters read as the letters they stand for.

    >>> prompt_opening("You are a pirate. Describe the sea.") == prompt_opening("  you ARE, 3 wizards...")
    True
    >>> opening = prompt_opening("次の文を読んで答えなさい。")
    >>> opening == prompt_opening("次の文を訳しなさい"), opening == prompt_opening("下の問題に答えよ")
    (True, False)
    """
    opening = _OPENING_LETTERS.match(normalised, 0, 200)
    runs = [run for run in opening.groups() if run] if opening else []
    if runs and _UNSPACED_SCRIPT.match(runs[0]):
        runs = [runs[0][:_UNSPACED_OPENING]]
    return zlib.crc32(" ".join(runs).casefold().encode("utf-8", "surrogatepass"))


def _opening_buckets(opening: int) -> bytes:
    """A prompt's opening (``prompt_opening``) as its bucket in each of the two hashes: two bytes
    (bits 0-7 and 16-23 of the CRC, which vary independently).

    >>> list(_opening_buckets(0x00AB_00CD))
    [205, 171]
    """
    return bytes((opening & 0xFF, opening >> 16 & 0xFF))


def item_fingerprint(text: str) -> int:
    """A 32-bit hash of the item (its first 2000 characters), case and spacing ignored: the
    same item re-sent is the same."""
    return zlib.crc32(" ".join(text[:2000].casefold().split()).encode("utf-8", "surrogatepass"))


@dataclass(slots=True)
class _Candidate:
    """A young key seen by the cohort detector (small: a few ints and a tiny family tally)."""

    first_ts: int
    events: int = 0
    tokens: int = 0
    reported: int = 0
    short_answers: int = 0  # answers under min_harvest_tokens
    shared: int = 0  # its requests whose item another key sent before
    families: dict = field(default_factory=dict)  # member family -> requests (at most _MAX_FAMILIES)
    long: int = 0  # its requests of item length (content_family's long band)
    instructed: int = 0  # its free-form requests that instruct the answer's format (ANSWER_INSTRUCTED)
    # Its content sketch: of its first ``sketch_events`` requests, how many set each bit of the
    # prompt's SimHash (64 counts), and how many requests that is.
    bits: bytearray = field(default_factory=lambda: bytearray(_SIMHASH_BITS))
    sketched: int = 0
    # ... and how those requests opened: two bytes each (_opening_buckets; none when its records
    # carried no opening), at most 2 * sketch_events.
    openings: bytes = b""
    by_openings: bool = False  # its fit, when last one reached its bar, did only by how its prompts open
    family: int = -1  # the family it joined as a member (-1: not a member)
    named: bool = False  # named in a cohort incident
    linked: bool = False  # in a cluster of ClusterDetector's linking: not a cohort candidate
    on_beat: bool = False  # a mature key judged as a young one: it sent on a rotation's beat (_on_beat)
    unfit: bool = False  # a member whose content was judged and did not fit its wave (yet)
    partial: bool = False  # a member that kept to its item family only partly (min_partial_share)
    last_ts: int = -1  # its latest counted request
    last_key_events: int = -1  # and the key's events up to it (LinkRecord.key_events; -1 unknown)
    newest: int = -1  # the key's events up to its newest record learned: repeats up to it are dropped
    gaps: int = 0  # gaps between its counted requests (a mature key counts requests on, not gaps)
    quick_gaps: int = 0  # ... of which under machine_gap_ms
    gap_sum: float = 0.0  # the gaps per request between its counted requests (ms): their sum ...
    gap_squares: float = 0.0  # ... and sum of squares (how regular its pace is)
    # The keys that sent first the items it re-sent (at most _MAX_SOURCES): a member that draws
    # on the set named members swept is held to the machine-rate fit (_content_fits).
    sources: tuple = ()  # (shared by every candidate until one re-sends an item: no cost per key)
    later: int = 0  # a member's requests of its family since it joined (counted, not judged: _count_later)
    by_clock: bool = False  # its fit, when last judged, was its clock's only (_shares_clock)
    # What its latest record said of its own real-product evidence (LinkRecord.product): a
    # member showing it is left out of a paging incident (exculpation.shows_product)
    product: int = 0

    def sketch_prompt(self, simhash: int, opening: int) -> None:
        """Count one prompt into its sketch: its SimHash's bits and, when its record carried one,
        its opening's buckets (``_opening_buckets``)."""
        _add_bits(self.bits, simhash)
        self.sketched += 1
        if opening >= 0:
            self.openings += _opening_buckets(opening)

    def sketch(self) -> tuple[bytes, int, bytes]:
        """Its sketch as a family keeps it: (bit counts, prompts, openings)."""
        return bytes(self.bits), self.sketched, self.openings

    def at_machine_rate(self) -> bool:
        """Whether most gaps between its counted requests were under ``machine_gap_ms``."""
        return self.gaps > 0 and 2 * self.quick_gaps > self.gaps

    def gap_variation(self) -> float:
        """The coefficient of variation of its gaps per request (inf under two gaps).

        >>> metronome, person = _Candidate(0), _Candidate(0)
        >>> for gap in (300_000, 310_000, 295_000, 305_000):
        ...     metronome.gaps += 1; metronome.gap_sum += gap; metronome.gap_squares += gap * gap
        >>> for gap in (20_000, 900_000, 45_000, 4_000_000):
        ...     person.gaps += 1; person.gap_sum += gap; person.gap_squares += gap * gap
        >>> round(metronome.gap_variation(), 3), round(person.gap_variation(), 2)
        (0.018, 1.31)
        """
        gaps = self.gaps
        if gaps < 2 or self.gap_sum <= 0:
            return math.inf
        mean = self.gap_sum / gaps
        return math.sqrt(max(0.0, self.gap_squares / gaps - mean * mean)) / mean


_MAX_FAMILIES = 4
_MAX_SOURCES = 8
_SIMHASH_BITS = 64  # LinkRecord.simhash
_SMOOTHING = 0.5  # added to each bit's set and unset counts: no bit is certain
# A profile (a family's members' sketches added up): the count of each SimHash bit, then of each
# opening bucket of the first hash, then of the second (_profile_add_to).
_PROFILE_SIZE = _SIMHASH_BITS + 2 * OPENINGS
_OPENING_SMOOTHING = 2 * _SMOOTHING / OPENINGS
_SMOOTHINGS = [_SMOOTHING] * _SIMHASH_BITS + [_OPENING_SMOOTHING] * (2 * OPENINGS)


def _openings_of(sketch) -> bytes:
    """A sketch's openings (``_Candidate.openings``); a sketch of (bits, prompts) has none."""
    return sketch[2] if len(sketch) > 2 else b""


def _add_openings(counts: list, openings: bytes, sign: int, at: int = _SIMHASH_BITS) -> None:
    """Count ``openings`` (two bytes a prompt: _opening_buckets) into the opening buckets of
    ``counts``, the first hash's from ``at``, the second's after them: a profile's (laid out as
    _PROFILE_SIZE, after its SimHash bits) or, from 0, the background's own."""
    for k in range(0, len(openings), 2):
        counts[at + openings[k]] += sign
        counts[at + OPENINGS + openings[k + 1]] += sign


@dataclass(slots=True)
class _Family:
    recent: OrderedDict = field(default_factory=OrderedDict)  # member key -> (first request ts, its sketch)
    # The recent members' sketches added up: what the wave's item set is about.
    profile: list = field(default_factory=lambda: [0] * _PROFILE_SIZE)
    profile_total: int = 0
    quiet: int = 0  # members that left the window never named in an incident: its baseline
    quiet_beat: int = 0  # ... of which on a timer's beat: the baseline of a wave of such members
    first_ts: int = -1  # the family's first member
    incident: str | None = None  # the open incident's id
    named: list = field(default_factory=list)  # its members, in order of joining
    sent: int = 0  # members named in the last alert sent
    sent_requests: int = 0  # ... and their requests of the family in it (totals[0])
    updated_ts: int = 0
    # The named members' totals, kept as they join and send on (_count_later), so an update
    # costs O(1) but for listing the members: their requests of the family, earliest and latest
    # first request; and of the requests judged (those up to joining): the requests, of which
    # items sent before by another key, output tokens, answers with usage.
    totals: list = field(default_factory=lambda: [0, 0, 0, 0, None, None, 0.0, 0])
    member_requests: dict = field(default_factory=dict)  # named member -> its requests of the family
    mature: int = 0  # the open incident's members on mature accounts (named on content evidence)
    partial: int = 0  # ... that kept to the family only partly (camouflaged, named on content)
    few: int = 0  # ... that joined it with fewer than min_key_events requests (_late_member_family)
    by_neighbours: int = 0  # ... whose content fit its nearest members', not the wave's profile
    by_openings: int = 0  # ... whose prompts fit only by how they open (_opening_fit)
    by_clock: int = 0  # ... whose prompts did not fit, named for keeping the named members' clock (_shares_clock)
    # The open incident's members named on their content that kept a clock's beat: how many at
    # each mean gap, in buckets of the detector's clock tolerance (at most a few hundred).
    clocks: dict = field(default_factory=dict)
    paced: int = 0  # ... that sent at machine rate or on a timer's beat (_machine_paced)
    aged_on_beat: int = 0  # ... on mature accounts, judged as young keys for their beat (_on_beat)
    # Mature keys that swept like members (key -> first request ts, sketch, account hash, fit):
    # named when an incident opens if they fit it, and what a wave of mature members alone is
    # counted on (_mature_wave). Bounded by max_members, kept two windows.
    mature_recent: OrderedDict = field(default_factory=OrderedDict)
    # Their sketches added up: what a wave of mature members is about.
    mature_profile: list = field(default_factory=lambda: [0] * _PROFILE_SIZE)
    mature_profile_total: int = 0
    mature_quiet: int = 0  # mature members that left the window never named: their baseline
    # ... and their sketches added up (halved when over a bound): what the family's ordinary
    # old users ask, that a wave of mature members is told apart from (_ordinary_rates).
    mature_ordinary: list = field(default_factory=lambda: [0] * _PROFILE_SIZE)
    mature_ordinary_total: int = 0
    mature_first_ts: int = -1  # the family's first mature member
    mature_judged_at: int = 0  # mature members when its unfit ones were last judged again
    wave_checked: int = 0  # fitting mature members when a wave of them was last looked for
    mature_only: bool = False  # the open incident's wave was of mature members alone (_mature_wave)
    # ... and then its named mature members' sketches added up: what the campaign is about,
    # undiluted by the ordinary old users among the family's mature members (_mature_fits).
    core_profile: list = field(default_factory=lambda: [0] * _PROFILE_SIZE)
    core_total: int = 0
    rejudged_at: int = 0  # recent members when its unfit members were last judged again
    beat_only: bool = False  # the open incident's wave was of members on a timer's beat only (_join)
    # Young keys of fewer than min_key_events requests that kept to the family on a clock's
    # beat while no incident of it was open, or outside its window (key -> first request ts):
    # judged as late members when one opens (_name_waiting). Bounded by max_members, kept two
    # windows.
    waiting: OrderedDict = field(default_factory=OrderedDict)
    # A mixed item set's open incident: the families its named members' requests keep to, when
    # it opened (_mixed_parts): a small head keeping to one of them joins it (_late_member_family).
    parts: set = field(default_factory=set)
    # The open incident was sent above info: on-call was paged, it is not held at info again
    # when every member listed since shows a real product's evidence (_alert).
    raised: bool = False


class _Fit(float):
    """A content fit (mean log ratio per prompt) that carries its openings' share of it
    (``_opening_fit``, 0.0 when openings did not count): ``_reaches`` tells by it a member that
    fits only by how its prompts open. Arithmetic on it gives a plain float.

    >>> fit = _Fit(1.5, 0.75)
    >>> fit, fit.openings, CohortDetector._reaches(fit, 1.0, None)
    (1.5, 0.75, True)
    """

    __slots__ = ("openings",)

    def __new__(cls, fit: float, openings: float = 0.0) -> "_Fit":
        self = super().__new__(cls, fit)
        self.openings = openings
        return self


def _directions(counts: np.ndarray, totals: np.ndarray, ordinary: np.ndarray) -> np.ndarray:
    """Each sketch's bit rates' departure from ``ordinary``'s, as a unit vector (zero stays
    zero): their dot products are the cosines by which members find their nearest."""
    departures = (counts + _SMOOTHING) / (totals[:, None] + 2 * _SMOOTHING) - ordinary
    norms = np.linalg.norm(departures, axis=1, keepdims=True)
    return departures / np.where(norms > 0, norms, 1.0)


class CohortDetector:
    """Online cohort detection over link records; ``learn_one`` returns the alerts raised."""

    detector = "distillguard.cohort/0.1"

    def __init__(self, *, young_ms: int = YOUNG_MS, min_key_events: int = 8, max_key_events: int = MAX_KEY_EVENTS,
                 min_family_share: float = 0.75, min_free_form_share: float = 0.9,
                 min_item_length_share: float = 0.5, min_harvest_tokens: int = MIN_HARVEST_TOKENS,
                 min_members: int = 12, min_item_members: int = 8, min_content_affinity: float = 0.25,
                 sketch_events: int = 32,
                 profile_prior: float = 100.0, background_size: int = 1 << 16,
                 background_key_events: int = FIRST_KEY_EVENTS,
                 window_ms: int = 2 * DAY_MS, max_overlap: float = 0.2, baseline_ratio: float = 3.0,
                 critical_members: int = 48, max_keys: int = 100_000, max_members: int = 2048,
                 max_items: int = 200_000, update_interval_ms: int = 600_000, regrow: float = 1.1,
                 recount_growth: float = 2.0,
                 min_mature_records: int = 8, min_mature_affinity: float = 1.25,
                 max_mature_short_share: float = 0.25, min_partial_share: float = 0.5,
                 min_mixed_share: float = 0.2, min_late_events: int = 4, min_aged_late_events: int = 5,
                 max_clock_variation: float = 0.1,
                 neighbours: int = 10,
                 min_neighbour_affinity: float = 1.5, machine_gap_ms: int = 60_000,
                 min_machine_neighbour_affinity: float = 0.5, min_items_from_named: int = 2,
                 max_paced_variation: float = 0.35, rejudge_growth: float = 2.0,
                 min_mature_neighbour_affinity: float = 2.75,
                 min_mature_machine_neighbour_affinity: float = 0.75,
                 min_named_neighbour_affinity: float = 1.25,
                 family_ordinary_prior: float = 20.0, min_mature_wave_cohesion: float = 1.0,
                 opening_weight: float = 0.7, min_clock_peers: int = 8, clock_tolerance: float = 0.03) -> None:
        # At most YOUNG_MS: older accounts' events are not forwarded by link_record at all.
        self.young_ms = young_ms
        self.min_key_events = min_key_events
        self.max_key_events = max_key_events
        self.min_family_share = min_family_share
        self.min_partial_share = min_partial_share
        # A capability sweep walks a set of several item shapes and scripts (free-form
        # instructions, then multiple-choice items in Japanese, then exam items in another
        # script) and deals it to its heads in turn: each head got 40-60 % free-form and the
        # rest options in two scripts, and kept to no family (stress-attack-shift: a 152-head
        # hydra, 92 heads unnamed). Such a member must send at machine rate or on a timer's beat:
        # a student pastes quiz items into a share of its chats at a person's pace, and 20 of
        # them in two days fitted one another by the quiz's frame (a unit test). On probation
        # too: named only if its content fits a wave of 12 such members.
        self.min_mixed_share = min_mixed_share
        # A young key of ``min_late_events`` to ``min_key_events`` - 1 requests that keeps to the
        # family of an open incident, begun within its window, joins it on probation
        # (_late_member_family). A hydra that read ``min_key_events`` sends fewer requests a head
        # (stress-attack-shift: heads of 5-7 requests went unnamed): those heads open no wave,
        # but the incident its larger heads opened names them when their content fits it.
        if min_late_events < 3:
            raise ConfigError(f"min_late_events must be 3 or more (two gaps to tell a pace by), not {min_late_events}")
        self.min_late_events = min_late_events
        # ... on an aged account, ``min_aged_late_events`` (_join_small_aged): there are many more
        # old keys than young ones, and a person's first gaps keep a clock now and then, a
        # day's rhythm most of all (stress-unwrapped-plain-corpora: a casual old key's first 3
        # gaps 15, 12 and 14 hours apart, named in a free-form wave). Over 3 gaps 8 of 1,697
        # benign old keys there kept a clock, over 4 gaps 2; a hydra's heads keep it over all.
        if min_aged_late_events < min_late_events:
            raise ConfigError(f"min_aged_late_events must be min_late_events ({min_late_events}) or more, "
                              f"not {min_aged_late_events}")
        self.min_aged_late_events = min_aged_late_events
        # ... and it must have kept a clock's beat (_keeps_clock): gaps varying by under
        # ``max_clock_variation`` (a round-robin's heads: 0.06 and under over their first 3 gaps).
        # Over 3-6 gaps a person's bursty pace varies by under ``max_paced_variation`` (0.35) by
        # chance too often (a test's exponential gaps: 6 keys of 20), and a few prompts fit a
        # wave by chance. The clock is also what makes short free-form requests a member's
        # (_member_family): a person's quick session of short questions 2-5 minutes apart varied
        # by 0.33 (stress-judging-a: a casual key named in a wave on a beat, under 0.35).
        self.max_clock_variation = max_clock_variation
        self.min_free_form_share = min_free_form_share
        self.min_item_length_share = min_item_length_share
        self.min_harvest_tokens = min_harvest_tokens
        self.min_members = min_members
        # A family of an item's shape (options, an answer label, math, code) takes a smaller wave
        # than a free-form one: few ordinary young users keep to such items, and the sealed
        # adaptive stream's campaigns average about 12 keys. At 12 everywhere a cohort of 8-11
        # made no wave (content-cohort-b +1000: a styled 20-key campaign named by 3 keys; by 17
        # at 8); at 8 everywhere, chance groups of casual young users made free-form waves
        # (fabricated-conversations-b +1000, -c +1000, obfuscated-b +2000: 3-4 casual keys named
        # at warning each).
        self.min_item_members = min_item_members
        # 0.25 nats a prompt: a 10-request member's prompts are e**2.5 (~12) times likelier under
        # the wave's profile than under ordinary traffic's; an outsider's expected ratio is below
        # 0, and the 64 bits are not independent (the ratio overstates), hence the margin.
        self.min_content_affinity = min_content_affinity
        if not 0 < sketch_events <= 255:
            raise ConfigError(f"sketch_events must be 1..255 (one byte per bit count), not {sketch_events}")
        self.sketch_events = sketch_events
        self.profile_prior = profile_prior
        self.background_size = background_size
        # Ordinary traffic is what ordinary *keys* ask about: each established key's first
        # ``background_key_events`` requests only (every key's first FIRST_KEY_EVENTS reach this
        # detector; a record of an older worker, its position unknown, counts). Past them a
        # key's records come only when they are sampled or scored, so a few busy keys (an app's
        # template, a reseller's traffic) made half the background (product-negatives-d +2000:
        # 48 % from records past a key's 64th, 30 % from seven homework apps), and casual chat
        # fitted a wave of casual keys by 0.8 nats against it: 29 ordinary keys named in one
        # incident.
        if background_key_events < 1:
            raise ConfigError(f"background_key_events must be 1 or more, not {background_key_events}")
        self.background_key_events = background_key_events
        self.window_ms = window_ms
        self.max_overlap = max_overlap
        self.baseline_ratio = baseline_ratio
        self.critical_members = critical_members
        self.max_keys = max_keys
        self.max_members = max_members
        self.max_items = max_items
        self.update_interval_ms = update_interval_ms
        self.regrow = regrow
        # An open incident's alert is sent again, at most every update_interval_ms, once its
        # members' requests grew by ``recount_growth`` since the last: a wave's members join at
        # their 4th-8th request and may send ten times as many after the last one joined, and
        # on-call sizes the campaign by the alert's counts.
        self.recount_growth = recount_growth
        # Mature accounts (older than young_ms) are judged on their first requests (the link
        # stage forwards every key's first FIRST_KEY_EVENTS): ``min_mature_records`` of them, of
        # which at most ``max_mature_short_share`` answered under harvest length, and a closer
        # content fit (``min_mature_affinity`` on ``min_mature_records`` prompts; _mature_bar).
        # Judged on 4 sampled records before (the 1st, 2nd, 4th, 8th of a paying key), a
        # person's sketch reached 1.26 and members' ranged from below 0 to 6 (content-cohort-b);
        # on 8 prompts people's reached 0.72, on 16 0.42.
        self.min_mature_records = min_mature_records
        self.max_mature_short_share = max_mature_short_share
        self.min_mature_affinity = min_mature_affinity
        # A wave of mature members alone (_mature_wave) names those whose prompts fit the other
        # mature members' profile by the mature bar, or, in a free-form family (where several
        # cohorts' item sets and old users' long requests mix in the profile), their nearest
        # mature members' by ``min_mature_neighbour_affinity``: ordinary old users' reached 2.2
        # (product-negatives-b +2000), content-cohort-aged's heads 0.65-12 (median 1.5).
        self.min_mature_neighbour_affinity = min_mature_neighbour_affinity
        # ... or, for one that sent at machine rate (most gaps under ``machine_gap_ms``), its
        # nearest among the family's mature members that did too by
        # ``min_mature_machine_neighbour_affinity``: ordinary old keys at machine rate (batch
        # jobs, a quick session) reached 0.73 there, content-cohort-aged's automated heads
        # 0.5 and more for 83-97 % of them.
        self.min_mature_machine_neighbour_affinity = min_mature_machine_neighbour_affinity
        # ... or, once an incident of mature members alone is open in a free-form family, its
        # ``neighbours`` nearest named members by ``min_named_neighbour_affinity`` (_mature_fits).
        # Measured on content-cohort-aged's three draws, every judgement of a mature member:
        # ordinary old users reached 1.02 (519 of them), the unnamed heads 1.25 and more for 50
        # of 241 (their nearest named are their own campaign's; the named profile pools several).
        self.min_named_neighbour_affinity = min_named_neighbour_affinity
        # Mature members are judged against what the family's own ordinary old users ask (its
        # mature members that left the window never named, _ordinary_rates), ordinary traffic's
        # rates counting as ``family_ordinary_prior`` prompts beside theirs: against chat, any
        # multiple-choice questions fit one another by their shared frame (aged users each on
        # their own subject: 2.8 nats a prompt in a unit test; 11 such users seen before, and
        # 45 more are no wave with 20, still 18 named with 100).
        self.family_ordinary_prior = family_ordinary_prior
        # The fitting members of a wave of mature members must fit one another too, in groups of
        # ``min_members``: each one's prompts under the others' pooled sketches by
        # ``min_mature_wave_cohesion`` nats a prompt on average (_cohesive). Each rule above is
        # judged member by member, so among hundreds of ordinary old users in a family some pass
        # by chance, each for its own reasons (its own nearest users, its own quick peers): 13
        # such of 431 (fabricated-conversations-c: ten casual users on one corpus' questions,
        # three sweeps) made a wave whose members fitted one another by 0.49.
        # content-cohort-aged's heads at opening: 1.36, 4.2, 7.2.
        self.min_mature_wave_cohesion = min_mature_wave_cohesion
        # Several cohorts sweeping one free-form family at once (each its own item set) make a
        # wave profile that is a mix: a member fits only its own cohort's part of it. So a member
        # may fit its ``neighbours`` nearest recent members instead (their pooled sketches), by
        # the higher ``min_neighbour_affinity``: a person's prompts find some near neighbours by
        # chance among hundreds (stress-content-cohort: benign young keys up to ~1.25 nats).
        # A member that swept its slice at machine rate (most gaps under ``machine_gap_ms``: no
        # person reads a long answer and writes the next item-length request in a minute) needs
        # only ``min_machine_neighbour_affinity``: the ordinary young users of a free-form family
        # converse at a person's pace.
        if neighbours < 1:
            raise ConfigError(f"neighbours must be 1 or more, not {neighbours}")
        self.neighbours = neighbours
        self.min_neighbour_affinity = min_neighbour_affinity
        self.machine_gap_ms = machine_gap_ms
        self.min_machine_neighbour_affinity = min_machine_neighbour_affinity
        # A member sending on a timer (its gaps' coefficient of variation under
        # ``max_paced_variation`` over at least ``min_key_events`` - 1 gaps, however long they
        # are) is as machine-paced as a fast one: people are bursty (a session, a pause, a night:
        # benign young keys of the stress streams 1.17 and up, p5), a scheduled sweep keeps its
        # beat (stress-judging-a's proxy hydra: 0.05 median). An attacker can jitter the beat away
        # at no cost, but that only takes it out of this rule, which lowers the content bar and
        # never names a key by itself.
        self.max_paced_variation = max_paced_variation
        # A member at a person's pace that re-sent ``min_items_from_named`` or more items that
        # members already named in the family's open incident sent first draws on the set that
        # incident swept: that stands in for machine pacing, and it too needs only the
        # machine-rate fit. Only named members count, so this never forms an incident nor
        # grows one from items ordinary keys share (an earlier version counted any other key:
        # in stress-paraphrased-b a wave formed on it and named an ordinary key). The wave
        # as a whole must still split its set (``max_overlap``).
        self.min_items_from_named = min_items_from_named
        # A free-form member at machine rate or on a timer's beat whose content did not fit when
        # it joined is judged again each time the family's recent members grew by
        # ``rejudge_growth`` while an incident is open (_rejudge_unfit): a handful of chances, at
        # the same bars. Only members judged unfit, within the incident's window: one that never
        # counted toward a wave is not looked at. Not members at a person's pace: judged again,
        # an ordinary young user sometimes passes the higher bar by chance (stress-paraphrased-b:
        # one casual key named in a wave of 51), and their fit hardly gains from more members.
        if rejudge_growth <= 1.0:
            raise ConfigError(f"rejudge_growth must be over 1, not {rejudge_growth}")
        self.rejudge_growth = rejudge_growth
        # How much a prompt's opening weighs beside its SimHash (_opening_fit), once a family's
        # incident is open: it names more of a campaign whose heads' prompts are about different
        # things but open as its item set's do (content-cohort-aged: gpteacher's "You are a ...").
        # Not more: one corpus's ordinary users open their requests alike too.
        if not 0.0 <= opening_weight <= 1.0:
            raise ConfigError(f"opening_weight must be within [0, 1], not {opening_weight}")
        self.opening_weight = opening_weight
        # A member on a clock's beat (_keeps_clock) whose prompts fit neither the wave nor its
        # nearest members fits the open incident if ``min_clock_peers`` of the members named on
        # their content keep the same clock: their mean gaps within about twice
        # ``clock_tolerance`` of its own (_shares_clock). A hydra's scheduler hands each head its
        # requests in turn: every head sends once a rotation, to the minute (attack-shift: 152
        # heads of one campaign, each every 6,630-6,720 s over 5-20 requests), and a head dealt
        # the odd items of a mixed set fits no content bar. No person keeps a clock; two
        # customers' scripts keep one period only by chance, and then not in one item family
        # within the wave's days beside 8 named members.
        if min_clock_peers < 1 or not 0.0 < clock_tolerance < 0.5:
            raise ConfigError(f"min_clock_peers must be 1 or more and clock_tolerance within (0, 0.5), not "
                              f"{min_clock_peers} and {clock_tolerance}")
        self.min_clock_peers = min_clock_peers
        self._clock_step = math.log1p(clock_tolerance)
        self._keys: OrderedDict[str, _Candidate] = OrderedDict()
        # Mature candidates apart: the many ordinary old keys must not evict the young ones.
        self._mature: OrderedDict[str, _Candidate] = OrderedDict()
        self._items: OrderedDict[int, str] = OrderedDict()  # item -> the key that sent it first
        self._families: dict[int, _Family] = {}
        # families whose open incident has members not yet sent, or counts grown since sent
        self._pending: set[int] = set()
        # SimHash bits of established keys' first requests: what ordinary traffic is about, that a
        # cohort's item set is told apart from. Halved when full: bounded, and it follows drift.
        self._background = [0] * _SIMHASH_BITS
        self._background_total = 0
        # ... and how they opened: each opening bucket's count, of the first hash then the
        # second (_opening_buckets), over this many prompts. Halved with the bits.
        self._background_openings = [0] * (2 * OPENINGS)
        self._background_opened = 0
        # SimHashes learned but not yet counted into _background: counted in one vectorised
        # pass when a judgement reads it or the count is due to halve (the same counts, at a
        # fraction of a per-bit Python loop on every established account's request).
        self._background_pending: list[int] = []
        self._clock = 0
        # Whether a key is in a cluster of shared infrastructure now (set by ClusterDetector):
        # asked again when a wave is counted, because in the workers' partitioned link-values
        # stage a key's joins may arrive after its own records (replay: at once).
        self.is_linked = lambda key: False

    def learn_one(self, rec, *, linked: bool = False) -> list[dict]:
        """Learn one link record (``LinkRecord``); returns cohort alerts raised or updated.

        ``linked``: the key is already named in an incident of a cluster linked by shared
        infrastructure or frames (``ClusterDetector``): it is no cohort candidate (one campaign,
        one incident to act on). Linked into a cluster that raised none, it still is.
        """
        self._clock = max(self._clock, rec.ts_ms)
        alerts = self._due_updates()
        young = young_account(rec.ts_ms, rec.account_created_ms, self.young_ms)
        # Account maturity is no free pass: a mature account joins a cohort on content evidence
        # (it never starts a wave; see _join_mature).
        keys = self._keys if young else self._mature
        cand = keys.get(rec.api_key_id)
        # what ordinary traffic of mature accounts is about is learned from their keys' first
        # requests (but those of one promoted for its beat)
        background = not young
        if cand is None and not young:
            # Judged as a young key: one _join_mature promoted for its beat, or a member whose
            # account turned young_ms old since it joined (the same member a day later: a
            # second, mature candidate of it was named again in the same incident). A young
            # key not a member by then is judged afresh as a mature one: a person's few
            # requests before the account came of age buy no young key's bars.
            promoted = self._keys.get(rec.api_key_id)
            if promoted is not None and (promoted.on_beat or promoted.family >= 0):
                background = not promoted.on_beat
                young, keys, cand = True, self._keys, promoted
        # the key's requests this record stands for: its requests since its last record (past a
        # mature account's first FIRST_KEY_EVENTS, a young one's first MAX_KEY_EVENTS, only
        # sampled or scored records are forwarded)
        sampled = 1
        if cand is not None and rec.key_events > 0:
            if rec.key_events <= cand.newest:
                # Sent again for an event a worker re-applied (its key states restored older
                # after a restart): learned already. (The cluster detector drops its own
                # records' repeats by their source offsets; a mature key's first requests
                # reach only this detector.)
                return alerts
            if cand.newest > 0:
                sampled = rec.key_events - cand.newest
            cand.newest = rec.key_events
        if cand is not None:
            alerts.extend(self._learn_product(rec.api_key_id, cand, rec.product))
        if background and rec.simhash >= 0 and rec.style <= 0 and rec.key_events <= self.background_key_events:
            self._learn_background(rec.simhash, rec.opening)
        if rec.family < 0:
            return alerts
        if cand is None:
            if rec.key_events > self.max_key_events:
                return alerts  # an older key, first seen late: its first requests are not known
            cand = keys[rec.api_key_id] = _Candidate(rec.ts_ms, newest=rec.key_events, product=rec.product)
            if len(keys) > self.max_keys:
                keys.popitem(last=False)
        else:
            keys.move_to_end(rec.api_key_id)
        # A provisional member not named yet keeps counting its requests' families: a mixed one
        # (at its 8th request a key may not keep to one family yet, an agent's tool output ending
        # on a label, that keeps to one by its 12th: agent-harvest, a head of a free-form cohort
        # mixed at 10), and a late one of fewer than min_key_events requests, judged again as any
        # member once it has sent them (_late_member_family).
        late = young and cand.family >= 0 and not cand.named and cand.events < self.min_key_events
        provisional = late or (cand.family == MIXED_ITEMS and not cand.named and young)
        if young and cand.family >= 0 and not provisional and not cand.named and not cand.linked and not linked:
            self._count_later(rec.api_key_id, cand, sampled)
            alerts.extend(self._resketch(rec, cand))
            return alerts
        if not young and cand.family >= 0 and not cand.named and not linked \
                and cand.events < 2 * self.min_mature_records:
            alerts.extend(self._rejudge_mature(rec, cand))
            return alerts
        if (cand.family >= 0 and not provisional) or cand.events >= self.max_key_events or cand.linked:
            if cand.family >= 0 and not provisional:
                self._count_later(rec.api_key_id, cand, sampled)
            return alerts  # a member already, judged on its first requests and not one, or linked
        if linked:
            cand.linked = True
            return alerts
        cand.events += 1
        if cand.last_ts >= 0:
            # per request between the two: a mature key's records are its 1st, 2nd, 4th ... only
            requests = max(1, rec.key_events - cand.last_key_events) if cand.last_key_events > 0 else 1
            gap = rec.ts_ms - cand.last_ts
            cand.gaps += 1
            cand.quick_gaps += 0 <= gap < self.machine_gap_ms * requests
            gap = max(0, gap) / requests
            cand.gap_sum += gap
            cand.gap_squares += gap * gap
        cand.last_ts, cand.last_key_events = rec.ts_ms, rec.key_events
        self._count_answer(cand, rec.output_tokens)
        family = member_family(rec.family)
        if family in cand.families or len(cand.families) < _MAX_FAMILIES:
            cand.families[family] = cand.families.get(family, 0) + 1
        cand.long += _is_long(rec.family)
        cand.instructed += rec.family >= 0 and bool(rec.family & ANSWER_INSTRUCTED)
        if rec.simhash >= 0 and cand.sketched < self.sketch_events:
            cand.sketch_prompt(rec.simhash, rec.opening)
        if rec.item >= 0:
            first = self._items.setdefault(rec.item, rec.api_key_id)
            if first != rec.api_key_id:
                cand.shared += 1
                if len(cand.sources) < _MAX_SOURCES:
                    cand.sources += (first,)
            elif len(self._items) > self.max_items:
                self._items.popitem(last=False)
        if not young:
            alerts.extend(self._join_mature(rec.api_key_id, cand, rec.account_id))
            return alerts
        if cand.on_beat and not cand.named and cand.events == self.min_mature_records and not self._on_beat(cand):
            # A mature key judged as a young one for its clock while it had few requests
            # (_join_small_aged), whose first min_mature_records are on no rotation's beat: back
            # to the mature keys' judgement, as if it had never been promoted.
            if provisional:
                self._leave(rec.api_key_id, cand)
            self._judge_as_mature(rec.api_key_id, cand)
            alerts.extend(self._join_mature(rec.api_key_id, cand, rec.account_id))
            return alerts
        if provisional:
            cand.partial = False  # judged afresh: set again by a partial, mixed or late family
        family = self._member_family(cand)
        if family is None and self.min_late_events <= cand.events < self.min_key_events:
            family = self._late_member_family(rec.api_key_id, cand)
        if provisional and (family != cand.family or late and cand.events >= self.min_key_events):
            self._leave(rec.api_key_id, cand)
        if family is not None and family != cand.family:
            alerts.extend(self._join(rec.api_key_id, cand, family))
        return alerts

    def _learn_product(self, key: str, cand: _Candidate, product: int) -> list[dict]:
        """Note what a key's latest record says of its own real-product evidence. A named
        member that shows it now is left out of its incident's next update; one whose records
        stop showing it is named in it, at once when the incident was held at info for it (a
        harvest's head at a developer's pace over its first tasks, that speeds up)."""
        shown, cand.product = shows_product(cand.product, cohort=True), product
        if shows_product(product, cohort=True) == shown or not cand.named:
            return []
        fam = self._families.get(cand.family)
        if fam is None or fam.incident is None or key not in fam.member_requests:
            return []  # (named in an incident closed since)
        if shown and not fam.raised:
            return self._alert(cand.family, fam)
        self._pending.add(cand.family)
        return []

    def _count_later(self, key: str, cand: _Candidate, requests: int) -> None:
        """Count a member's requests of its family since it joined (``requests``: those its
        record stands for), into its open incident's when it is named: the incident's reasons
        say what its members sent, not the few requests each had sent when it joined (a wave's
        first members join at their 4th-8th request of 10-40). Its judged counts stay those at
        joining."""
        cand.later += requests
        if cand.named:
            fam = self._families.get(cand.family)
            counted = fam.member_requests.get(key) if fam is not None else None
            if counted is not None:  # (None: named in an incident closed since)
                fam.member_requests[key] = counted + requests
                fam.totals[0] += requests
                if fam.totals[0] >= self.recount_growth * fam.sent_requests:
                    self._pending.add(cand.family)  # sent again with the counts (_due_updates)

    def _leave(self, key: str, cand: _Candidate) -> None:
        """Take a provisional member not named out of its family (a mixed one that keeps to one
        family now, or to none; a late one judged again as any member): out of the family's
        recent members and profile."""
        fam = self._families.get(cand.family)
        entry = fam.recent.pop(key, None) if fam is not None else None
        if entry is not None:
            self._profile_add(fam, entry[1], -1)
        cand.family, cand.unfit = -1, False

    def _count_answer(self, cand: _Candidate, output_tokens: int) -> None:
        """Count one answer's length into ``cand`` (0 or unknown: no answer, a refused or failed
        request: no length to judge)."""
        if output_tokens > 0:
            cand.tokens += output_tokens
            cand.reported += 1
            cand.short_answers += output_tokens < self.min_harvest_tokens

    def _name_mature(self, fam: _Family, key: str, cand: _Candidate | None, sketch) -> bool:
        """Name a mature key in the open incident if it began within its wave's window and its
        prompts fit the wave's profile by ``min_mature_affinity`` (the young members' profile;
        in an incident of mature members alone, theirs: _mature_fits)."""
        if cand is None or cand.named or len(fam.named) >= self.max_members or \
                not self._in_incident_window(fam, cand.first_ts):
            return False
        if fam.mature_only:
            if not self._mature_fits(cand.family, fam, key):
                return False
        elif not self._reaches(self._affinity(fam, sketch, own=False, openings=True), self._mature_bar(sketch[1]), cand):
            return False
        self._name(fam, key, cand, sketch)
        fam.mature += 1
        return True

    def _resketch(self, rec, cand: _Candidate) -> list[dict]:
        """A member not named (its first prompts did not fit the wave's profile) keeps
        sketching its prompts, and is judged again on twice as many: a sketch of 8 prompts is
        noisy (a person's and a member's overlap), and in a family swept by several cohorts at
        once each member's item set is a part of the profile only. Counts stay those at joining."""
        fam = self._families.get(cand.family)
        if rec.simhash < 0 or cand.sketched >= self.sketch_events or fam is None \
                or rec.api_key_id not in fam.recent:
            return []
        first, old = fam.recent[rec.api_key_id]
        cand.sketch_prompt(rec.simhash, rec.opening)
        if cand.sketched & (cand.sketched - 1):
            return []  # judged again at 16 and 32 prompts: a few affinity sums per member
        sketch = cand.sketch()
        self._profile_add(fam, old, -1)
        fam.recent[rec.api_key_id] = (first, sketch)
        self._profile_add(fam, sketch, 1)
        if fam.incident is None or len(fam.named) >= self.max_members or self.is_linked(rec.api_key_id) or \
                abs(first - fam.totals[5]) > self.window_ms or not self._may_join(fam, cand) or \
                not self._content_fits(cand.family, fam, rec.api_key_id):
            return []
        self._name(fam, rec.api_key_id)
        return self._send_or_hold(cand.family, fam)

    def _join_mature(self, key: str, cand: _Candidate, account: str | None) -> list[dict]:
        """A mature key sweeping like a member (on its few forwarded records, none of its items
        sent before by another key) joins the family's open incident when its prompts fit the
        wave's profile closely, or counts toward a wave of mature members alone (_offer_mature).
        Mature keys are not counted into young keys' waves nor their profile; an evaluation
        re-running a benchmark overlaps other keys' items, and gets short graded answers."""
        # Nearly every answer at harvest length (not on average: an evaluation's few long chats
        # beside its short graded answers), none of its items another key's. (Nearly: answer
        # lengths spread, and of the 8+ answers it is judged on a harvest's own items leave one
        # or two under the bar; every one was asked of the 4 sampled records once judged on.)
        if cand.shared > self.max_overlap * cand.events \
                or cand.short_answers > self.max_mature_short_share * cand.reported:
            return []
        if cand.events < self.min_mature_records:
            return self._join_small_aged(key, cand) if cand.events >= self.min_aged_late_events else []
        family = self._member_family(cand, self.min_mature_records)
        on_beat = self._on_beat(cand)
        if family is None and on_beat:
            family = self._member_family(cand)  # as a young key's: a mix or a partial share, on probation
        if family is None:
            return []
        if on_beat:
            # Judged as a young key from now on: counted toward waves and the wave's profile.
            self._judge_as_young(key, cand)
            return self._join(key, cand, family)
        cand.family = family
        return self._offer_mature(key, cand, account)

    def _join_small_aged(self, key: str, cand: _Candidate) -> list[dict]:
        """A mature key of ``min_aged_late_events`` to ``min_mature_records`` - 1 requests sent on a
        clock's beat minutes apart (not a batch job's machine rate), keeping to one family: a
        hydra's small head on a bought aged account (stress-attack-shift: 18 of 36 unnamed heads
        of 5-7 requests). Judged as a young key from then on (``on_beat``, as _on_beat's keys):
        a late member of the family's open incident on probation, or waiting for one
        (_late_member_family). Back to the mature keys' judgement at its ``min_mature_records``-th
        request unless those keep a rotation's beat (learn_one): a person's few gaps keep a
        clock by chance now and then, and must not buy a young key's lower bars for good."""
        if cand.at_machine_rate() or self._small_head_family(cand) is None:
            return []
        self._judge_as_young(key, cand)
        family = self._late_member_family(key, cand)
        return self._join(key, cand, family) if family is not None else []

    def _judge_as_young(self, key: str, cand: _Candidate) -> None:
        """Move a mature candidate to the young ones, marked ``on_beat`` (learn_one finds it
        there by that mark)."""
        del self._mature[key]
        self._keys[key] = cand
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        cand.on_beat = True

    def _judge_as_mature(self, key: str, cand: _Candidate) -> None:
        """Move a candidate _judge_as_young moved back to the mature ones, unmarked (learn_one:
        its clock did not hold to its ``min_mature_records``-th request)."""
        del self._keys[key]
        self._mature[key] = cand
        if len(self._mature) > self.max_keys:
            self._mature.popitem(last=False)
        cand.on_beat = cand.partial = False

    def _on_beat(self, cand: _Candidate) -> bool:
        """Whether a mature key sent its first requests on a rotation's beat: gaps of a minute
        or more (not a batch job's machine rate) that vary by under ``max_paced_variation``.

        A hydra's scheduler hands its heads their requests in turn (round robin, or a burst
        across every head each period): each head's own pace is the scheduler's divided by the
        heads, minutes apart, and as regular as a clock. No person writes item-sized requests
        to the minute, and a mature account's batch job runs at machine rate. Such a key is
        judged as a young one (the accounts of a hydra that buys aged accounts are as much
        the campaign's as new ones): it counts toward a wave of members on a beat (_join), and
        its content must fit it.
        An attacker can jitter each head's pace at no cost; that takes the head back to the
        mature keys' closer content bar, no further.

        >>> det = CohortDetector()
        >>> head, batch = _Candidate(0, events=8), _Candidate(0, events=8)
        >>> for gap in (600_000, 590_000, 610_000, 605_000, 598_000, 602_000, 595_000):
        ...     head.gaps += 1; head.gap_sum += gap; head.gap_squares += gap * gap
        >>> for gap in (2_000, 2_100, 1_900, 2_050, 2_000, 1_950, 2_000):
        ...     batch.gaps += 1; batch.quick_gaps += 1; batch.gap_sum += gap; batch.gap_squares += gap * gap
        >>> det._on_beat(head), det._on_beat(batch)
        (True, False)
        """
        return cand.gaps >= self.min_mature_records - 1 and not cand.at_machine_rate() \
            and cand.gap_variation() < self.max_paced_variation

    def _mature_bar(self, prompts: int) -> float:
        """The content fit a mature key's sketch of ``prompts`` prompts needs: ``min_mature_affinity``
        on ``min_mature_records`` prompts, lower on more by the square root of their ratio (a mean
        over more prompts strays less: the same chance that a person's prompts pass).

        >>> det = CohortDetector()
        >>> det._mature_bar(8), round(det._mature_bar(16), 3)
        (1.25, 0.884)
        """
        return self.min_mature_affinity * math.sqrt(self.min_mature_records / max(prompts, self.min_mature_records))

    def _rejudge_mature(self, rec, cand: _Candidate) -> list[dict]:
        """A mature key judged a member but not named keeps sketching its prompts (and counting
        its answers) and is judged again on twice ``min_mature_records``: a sketch of 8 prompts
        is noisy, 16 tell a member's item set from a person's requests more surely."""
        if rec.simhash >= 0:
            cand.sketch_prompt(rec.simhash, rec.opening)
        cand.events += 1
        self._count_answer(cand, rec.output_tokens)
        if cand.events != 2 * self.min_mature_records or \
                cand.short_answers > self.max_mature_short_share * cand.reported:
            return []
        return self._offer_mature(rec.api_key_id, cand, rec.account_id)

    def _offer_mature(self, key: str, cand: _Candidate, account: str | None) -> list[dict]:
        """Keep a mature member among its family's recent mature members; name it in the open
        incident if its prompts fit it, or count the family's wave of mature members."""
        family = cand.family
        fam = self._families.setdefault(family, _Family())
        sketch = cand.sketch()
        self._mature_add(fam, key, cand, sketch, account)
        if fam.incident is not None and cand.first_ts - fam.totals[5] <= self.window_ms:
            named = len(fam.named)
            self._name_mature(fam, key, cand, sketch)
            if fam.mature_only and len(fam.mature_recent) >= self.rejudge_growth * fam.mature_judged_at:
                self._rejudge_mature_unfit(family, fam)
            return self._send_or_hold(family, fam) if len(fam.named) > named else []
        return self._mature_wave(family, fam, cand)

    def _mature_add(self, fam: _Family, key: str, cand: _Candidate, sketch, account: str | None) -> None:
        """Count a mature member (again, with its newer sketch: in arrival order) into the
        family's recent mature members and their profile; those gone two windows back, never
        named, are the baseline of a wave of mature members."""
        if fam.mature_first_ts < 0:
            fam.mature_first_ts = cand.first_ts
        old = fam.mature_recent.pop(key, None)
        if old is not None:
            self._profile_add_to(fam.mature_profile, old[1], -1)
            fam.mature_profile_total -= old[1][1]
        # [first request ts, sketch, account, fit (None: not judged yet), sent at machine rate,
        # judged by its machine-rate peers already]
        fam.mature_recent[key] = [cand.first_ts, sketch, account, None, cand.at_machine_rate(), False]
        self._profile_add_to(fam.mature_profile, sketch, 1)
        fam.mature_profile_total += sketch[1]
        horizon = self._clock - 2 * self.window_ms
        while fam.mature_recent and (next(iter(fam.mature_recent.values()))[0] < horizon
                                     or len(fam.mature_recent) > self.max_members):
            gone, entry = fam.mature_recent.popitem(last=False)
            self._profile_add_to(fam.mature_profile, entry[1], -1)
            fam.mature_profile_total -= entry[1][1]
            gone_cand = self._mature.get(gone)
            if gone_cand is None or not gone_cand.named:
                fam.mature_quiet += 1
                self._profile_add_to(fam.mature_ordinary, entry[1], 1)
                fam.mature_ordinary_total += entry[1][1]
                if fam.mature_ordinary_total > self.background_size:
                    fam.mature_ordinary = [n // 2 for n in fam.mature_ordinary]
                    fam.mature_ordinary_total //= 2

    def _wave_floor(self, family: int) -> int:
        """The fewest young members that make a wave in ``family`` (a member family): free-form
        is the shape of ordinary chat, so it needs more than an item's shape does; a mix of
        shapes is no one shape either."""
        return self.min_members if _of_no_one_shape(family) else self.min_item_members

    def _mature_wave(self, family: int, fam: _Family, cand: _Candidate) -> list[dict]:
        """Open an incident of mature members alone: more accounts than ``min_members`` and
        than ``baseline_ratio`` times the family's history of mature members began within a
        window of ``cand``'s first request, and ``min_members`` accounts of them fit one
        another's content closely (_mature_fits). Account age is no free pass: a campaign that
        buys aged accounts for every head has no young wave to join (content-cohort-aged)."""
        window = self.window_ms
        wave = [k for k, entry in fam.mature_recent.items()
                if abs(entry[0] - cand.first_ts) <= window and not self.is_linked(k)]
        # Accounts, not keys: one product's several keys under its account are one customer.
        accounts = {fam.mature_recent[k][2] for k in wave}
        if len(accounts) < max(self.min_members, self.baseline_ratio * self._baseline(
                fam, fam.mature_quiet, fam.mature_first_ts)):
            return []
        rejudge = len(fam.mature_recent) >= self.rejudge_growth * fam.mature_judged_at
        if rejudge:
            fam.mature_judged_at = len(fam.mature_recent)
        fitting = [k for k in wave if fam.mature_recent[k][3] or (
            (fam.mature_recent[k][3] is None or rejudge) and self._mature_fits(family, fam, k))]
        if len({fam.mature_recent[k][2] for k in fitting}) < self.min_members or len(fitting) == fam.wave_checked:
            return []
        # Looked for again once the fitting members' count changes (fits stick; members leave
        # the window only as others arrive, which changes it too, save by coincidence).
        fam.wave_checked = len(fitting)
        fitting = self._cohesive(fam, fitting)
        if len({fam.mature_recent[k][2] for k in fitting}) < self.min_members:
            return []
        alerts = self._close(family, fam) if fam.incident is not None else []
        first = min(fam.mature_recent[k][0] for k in fitting)
        fam.beat_only, fam.mature_only = False, True
        fam.incident = "cluster:cohort-" + member_family_name(family) + "-" + datetime.fromtimestamp(
            first // DAY_MS * DAY_MS / 1000, timezone.utc).strftime("%Y%m%d")
        for key in fitting:
            member = self._mature.get(key)
            if member is not None and not member.named:
                self._name(fam, key, member, fam.mature_recent[key][1])
                fam.mature += 1
        self._rejudge_mature_unfit(family, fam)
        alerts.extend(self._alert(family, fam))
        return alerts

    def _cohesive(self, fam: _Family, keys: list[str]) -> list[str]:
        """Those of recent mature members ``keys`` that are in a group of ``min_members`` of
        them fitting one another: each key with its nearest others among ``keys`` (the cosine
        of their bit rates' departures from the family's ordinary rates, as
        _neighbour_affinity), a group that holds when each member's prompts, under the others'
        pooled sketches, are ``min_mature_wave_cohesion`` nats a prompt likelier than under
        ordinary rates on average. Keys splitting one item set share its vocabulary (several
        campaigns in one family at once: each its own groups); old users that each passed a fit
        by chance, a few on each topic, are about different things. Vectorised; asked when a
        wave's fitting members change.

        >>> import random
        >>> det = CohortDetector()
        >>> fam = _Family()
        >>> topic = [bytes(random.Random(t).choice((2, 6)) for _ in range(64)) for t in range(8)]
        >>> for i in range(12):  # 12 keys on one item set, 12 old users in pairs on six topics
        ...     fam.mature_recent[f"head{i}"] = [0, (topic[7], 8), f"h{i}", True, False, False]
        ...     fam.mature_recent[f"user{i}"] = [0, (topic[i // 2], 8), f"u{i}", True, False, False]
        >>> heads, users = [f"head{i}" for i in range(12)], [f"user{i}" for i in range(12)]
        >>> set(heads) <= set(det._cohesive(fam, heads + users)), det._cohesive(fam, users)
        (True, [])
        """
        size = self.min_members
        if len(keys) < size:
            return []
        sketches = [fam.mature_recent[key][1] for key in keys]
        # (what they are about only: openings are one corpus's frame, its ordinary users share it)
        ordinary = np.asarray(self._ordinary_rates(fam)[:_SIMHASH_BITS], dtype=float)
        counts = np.frombuffer(b"".join(sk[0] for sk in sketches), dtype=np.uint8).reshape(len(keys), _SIMHASH_BITS)
        counts = counts.astype(float)
        totals = np.fromiter((max(1, sk[1]) for sk in sketches), dtype=float, count=len(keys))
        directions = _directions(counts, totals, ordinary)
        closeness = directions @ directions.T
        np.fill_diagonal(closeness, np.inf)  # each group holds its own key first
        groups = np.argsort(-closeness, axis=1, kind="stable")[:, :size]  # (keys, size)
        member_counts, member_totals = counts[groups], totals[groups]  # (keys, size, 64), (keys, size)
        others = member_counts.sum(axis=1, keepdims=True) - member_counts
        others_n = member_totals.sum(axis=1, keepdims=True) - member_totals
        p_group = (others + self.profile_prior * ordinary) / (others_n[..., None] + self.profile_prior)
        ratio = (member_counts * np.log(p_group / ordinary)
                 + (member_totals[..., None] - member_counts) * np.log((1 - p_group) / (1 - ordinary))).sum(axis=2)
        own = ratio / member_totals
        cohesive = own.mean(axis=1) >= self.min_mature_wave_cohesion
        # each key by its own group, if it fits it itself: one campaign's cohesive group is what
        # an ordinary key nearest to it finds, and it need not be like it
        return [key for key, ok, fit in zip(keys, cohesive, own[:, 0]) if ok and fit >= self.min_mature_wave_cohesion / 2]

    def _rejudge_mature_unfit(self, family: int, fam: _Family) -> None:
        """Judge again the recent mature members of an incident of mature members alone that
        did not fit (now against its named members' profile too: _mature_fits), within its
        window. Asked when it opens and each time the family's mature members grew by
        ``rejudge_growth``: a few times per wave."""
        fam.mature_judged_at = len(fam.mature_recent)
        earliest, latest = fam.totals[4], fam.totals[5]
        for key, entry in list(fam.mature_recent.items()):
            member = self._mature.get(key)
            if member is not None and not member.named and entry[3] is not True \
                    and earliest - self.window_ms <= entry[0] <= latest + self.window_ms:
                self._name_mature(fam, key, member, entry[1])

    def _mature_fits(self, family: int, fam: _Family, key: str) -> bool:
        """Whether a recent mature member's prompts fit the other mature members' profile by
        the mature bar (_mature_bar), or, in a free-form family, its nearest mature members' by
        ``min_mature_neighbour_affinity``: ordinary old users who write long requests are many,
        and about what everyone asks about; a campaign's heads share one item set's vocabulary.
        Judged on the mature members alone (kept in ``fam.mature_recent``)."""
        entry = fam.mature_recent[key]
        sketch = entry[1]
        bar = self._mature_bar(sketch[1])
        ordinary = self._ordinary_rates(fam)
        openings = fam.mature_only and fam.incident is not None  # (as in _content_fits)
        cand = self._mature.get(key)
        fits = self._reaches(self._affinity_to(fam.mature_profile, fam.mature_profile_total, sketch, ordinary=ordinary,
                                               openings=openings), bar, cand)
        if not fits and _is_free_form(family):
            fits = self._reaches(self._neighbour_affinity(fam.mature_recent, key, sketch, ordinary, openings),
                                 self.min_mature_neighbour_affinity, cand)
        if not fits and _is_free_form(family) and entry[4] and not entry[5]:
            # Sent at machine rate: its nearest among the mature members that did too. An old
            # account's own batch jobs are few in a family and about different things; a
            # campaign's automated heads are many and about one item set. Judged once (on this
            # sketch): the nearest of many are near by chance too, and an ordinary key's quick
            # session judged again as the family's heads grew passed (0.82 and 0.87 on the
            # fifth and second judgement; 7 of 72 heads named this way needed a second).
            entry[5] = True
            machine = OrderedDict((k, e) for k, e in fam.mature_recent.items() if e[4])
            fits = self._reaches(self._neighbour_affinity(machine, key, sketch, ordinary, openings),
                                 self.min_mature_machine_neighbour_affinity, cand)
        if not fits and fam.mature_only and fam.core_total > 0:
            # Once an incident of them is open: its named members' profile, by the same bar.
            # The family's mature members mix the campaign's heads with ordinary old users
            # (content-cohort-aged: 122 such beside 244 heads in one free-form family), which
            # dilutes the profile every head is judged against; the named members are the
            # campaign's (no ordinary key of any stress stream fitted the first judgement).
            fits = self._reaches(self._affinity_to(fam.core_profile, fam.core_total, sketch, own=False,
                                                   ordinary=ordinary, openings=openings), bar, cand)
            if not fits and _is_free_form(family):
                # Or its nearest named members: in a family several campaigns sweep at once the
                # named profile pools them all, and a head fits its own campaign's part only
                # (content-cohort-aged: a second plain campaign's heads -1.1 to -2.1 under it).
                fits = self._fits_named_neighbours(fam, key, sketch, ordinary, cand)
        entry[3] = fits
        return fits

    def _fits_named_neighbours(self, fam: _Family, key: str, sketch, ordinary: list,
                               cand: _Candidate | None) -> bool:
        """Whether a mature member's prompts fit its ``neighbours`` nearest named members of the
        open incident of mature members alone (those still among its recent mature members) by
        ``min_named_neighbour_affinity``, openings counted. Asked only with ``neighbours`` or
        more of them: fewer pooled are its profile again."""
        named = set(fam.named)
        members = OrderedDict((k, entry) for k, entry in fam.mature_recent.items() if k in named and k != key)
        if len(members) < self.neighbours:
            return False
        return self._reaches(self._neighbour_affinity(members, key, sketch, ordinary, openings=True),
                             self.min_named_neighbour_affinity, cand)

    def _ordinary_rates(self, fam: _Family | None = None) -> list[float]:
        """Each SimHash bit's rate in ordinary traffic: established keys' first requests, and,
        for ``fam``, its mature members that left the window never named once they hold
        ``profile_prior`` prompts, worth what they hold (ordinary traffic's rates count as
        ``family_ordinary_prior`` prompts beside them). Against chat,
        any two multiple-choice questions read alike by their shared frame (options, labels,
        "which of the following"): a family's own ordinary old users, once it has them, are what
        a wave of mature members must stand out from, not chat.

        >>> det = CohortDetector(family_ordinary_prior=20.0)
        >>> fam = _Family(mature_ordinary=[300] + [0] * 63, mature_ordinary_total=300)
        >>> det._ordinary_rates()[0], round(det._ordinary_rates(fam)[0], 3), round(det._ordinary_rates(fam)[1], 3)
        (0.5, 0.967, 0.033)
        """
        self._fold_background()
        total = self._background_total + 2 * _SMOOTHING
        rates = [(n + _SMOOTHING) / total for n in self._background]
        # Then each opening bucket's (of each hash): a prompt takes one, so the same one count of
        # smoothing is spread over the buckets, not a half given to each (a half would make every
        # bucket a sketch has not taken look rare).
        opened = self._background_opened + 2 * _SMOOTHING
        rates += [(n + _OPENING_SMOOTHING) / opened for n in self._background_openings]
        if fam is None or fam.mature_ordinary_total < self.profile_prior:
            return rates  # (a few prompts' rates stray: fits against them would be chance)
        own, prior = fam.mature_ordinary_total, self.family_ordinary_prior
        return [(n + smoothing + prior * rate) / (own + 2 * _SMOOTHING + prior)
                for n, rate, smoothing in zip(fam.mature_ordinary, rates, _SMOOTHINGS)]

    def _close(self, family: int, fam: _Family) -> list[dict]:
        """Close the family's open incident (a new wave began a window after its latest member):
        its last members and counts sent first."""
        alerts = self._alert(family, fam) if len(fam.named) > fam.sent or family in self._pending else []
        fam.incident, fam.named, fam.sent, fam.sent_requests, fam.member_requests = None, [], 0, 0, {}
        fam.totals, fam.mature, fam.partial, fam.by_neighbours = [0, 0, 0, 0, None, None, 0.0, 0], 0, 0, 0
        fam.by_openings, fam.few, fam.by_clock, fam.clocks = 0, 0, 0, {}
        fam.paced, fam.aged_on_beat = 0, 0
        fam.beat_only, fam.mature_only, fam.parts, fam.raised = False, False, set(), False
        fam.core_profile, fam.core_total = [0] * _PROFILE_SIZE, 0
        return alerts

    def _member_family(self, cand: _Candidate, min_events: int | None = None) -> int | None:
        """The family a candidate sweeps, once it looks like a member: enough requests, most in
        one family, answers at harvest length on average."""
        if cand.events < (self.min_key_events if min_events is None else min_events):
            return None
        if cand.reported and cand.tokens < self.min_harvest_tokens * cand.reported:
            return None
        family, n = max(cand.families.items(), key=lambda kv: (kv[1], -kv[0]))
        if not _is_free_form(family) and n >= self.min_family_share * cand.events:
            return family
        top, top_n = family, n
        # Free-form: no answer options or answer labels. Free-form item sets (instructions,
        # questions, problems) mix math and code items into their prose, so those count too.
        family -= family % len(_KINDS)
        n = sum(count for f, count in cand.families.items() if f - f % len(_KINDS) == family and _unlabelled(f))
        # Free-form is no item shape (it is what ordinary chat is): a member sweeping free-form
        # items keeps to them more strictly than one sweeping options, answer labels, math or
        # code, and its requests are mostly item-sized, where a person's chat is mostly short
        # turns ("thanks", "why?", "make it shorter").
        if n >= self.min_free_form_share * cand.events:
            # Short items sent at machine rate count too: a general-instruction set ("Rewrite
            # this sentence ...") is short, yet no person sends request after request a minute apart,
            # nor on a clock's beat hours apart all day and night (a slow round-robin's heads).
            return family if cand.long >= self.min_item_length_share * cand.events or cand.at_machine_rate() \
                or self._keeps_clock(cand) else None
        # Answer labels, by label or by instruction: a wrapper that ends some items on "Answer:"
        # and tells the model "answer with the letter only" after the others asks for labelled
        # answers all along (a share of each alone is neither the label kind's nor free-form's).
        labelled = family + _ANSWER_LABEL_KIND
        if cand.instructed and cand.families.get(labelled, 0) + cand.instructed >= self.min_family_share * cand.events:
            return labelled
        # A young key that keeps to an item shape only partly (a camouflaged member interleaves
        # other requests with its slice) is a member on probation: like a free-form one, it is
        # named only if it is about what the wave is about (_content_fits).
        if min_events is None and not _is_free_form(top) and top_n >= self.min_partial_share * cand.events:
            cand.partial = True
            return top
        if min_events is None and len(cand.families) > 1 and self._machine_paced(cand) and sum(
                count for f, count in cand.families.items()
                if f % len(_KINDS) in _LABELLED_KINDS) >= self.min_mixed_share * cand.events:
            cand.partial = True
            return MIXED_ITEMS
        return None

    def _in_incident_window(self, fam: _Family, first_ts: int) -> bool:
        """Whether a key whose first request was at ``first_ts`` began within a window of the
        open incident's named members' first requests (none named yet: not)."""
        earliest, latest = fam.totals[4], fam.totals[5]
        return earliest is not None and earliest - self.window_ms <= first_ts <= latest + self.window_ms

    def _late_member_family(self, key: str, cand: _Candidate) -> int | None:
        """The family of an open incident that a young key of fewer than ``min_key_events``
        requests keeps to strictly (no partial share, no mix), when it began within the
        incident's window; else None. It joins on probation: named only if its content fits the
        wave, in an item family too (a student with a few exam items during an exam wave is
        the false positive to expect). It counts toward no wave but the one open. It must have
        sent on a clock's beat (_keeps_clock): a person's few requests fit a wave's content by
        chance too often on so small a sketch. (A small head at machine rate with a jittered pace
        is not told from a person's quick session: not here.)

        One that keeps to a family with no incident open in its window waits for one
        (``_Family.waiting``): a hydra's small heads on a slow beat send their last request
        before its larger heads reach ``min_key_events`` and open the incident
        (stress-attack-shift: heads of 5-7 requests 111 minutes apart, done hours before it)."""
        family = self._small_head_family(cand)
        if family is None:
            return None
        fam = self._families.setdefault(family, _Family())
        if fam.incident is None or not self._in_incident_window(fam, cand.first_ts):
            mixed = self._families.get(MIXED_ITEMS)
            if mixed is not None and mixed.incident is not None and family in mixed.parts \
                    and self._in_incident_window(mixed, cand.first_ts):
                cand.partial = True
                return MIXED_ITEMS  # a part of an open mixed incident's set (_name_waiting)
            fam.waiting[key] = cand.first_ts
            fam.waiting.move_to_end(key)
            horizon = self._clock - 2 * self.window_ms
            while fam.waiting and (next(iter(fam.waiting.values())) < horizon
                                   or len(fam.waiting) > self.max_members):
                fam.waiting.popitem(last=False)
            return None
        cand.partial = True
        return family

    def _small_head_family(self, cand: _Candidate) -> int | None:
        """The family a key of few requests keeps to strictly, if it sent on a clock's beat."""
        return self._member_family(cand, self.min_late_events) if self._keeps_clock(cand) else None

    def _name_waiting(self, family: int, fam: _Family) -> None:
        """Judge the keys waiting for an incident of the family (``_Family.waiting``) as late
        members of the one just opened, once each: those that still keep to it on a clock's
        beat and began within its window join its recent members on probation, and are named
        if their content fits it (as _join judges a late member on its own request).

        A mixed item set's incident also takes those waiting in each part of the set (a family
        that ``min_mixed_share`` of its named members' requests keep to): a hydra deals its set
        in turn, and a head of 5-7 requests gets one part only (stress-attack-shift: the
        free-form instructions that a 152-head hydra dealt before its multiple-choice items)."""
        parts = fam.parts = self._mixed_parts(fam) if family == MIXED_ITEMS else set()
        waiting, fam.waiting = fam.waiting, OrderedDict()
        for part in parts:
            part_fam = self._families.get(part)
            if part_fam is not None:
                waiting.update((key, first) for key, first in part_fam.waiting.items() if key not in waiting)
        joined = []
        for key in waiting:
            cand = self._keys.get(key)
            if cand is None or cand.named or cand.family >= 0 or cand.linked or self.is_linked(key) \
                    or cand.events >= self.min_key_events:
                continue
            if self._late_member_family(key, cand) != family:
                continue  # (a part's small head: MIXED_ITEMS once fam.parts holds its family)
            cand.family = family
            sketch = cand.sketch()
            fam.recent[key] = (cand.first_ts, sketch)
            self._profile_add(fam, sketch, 1)
            joined.append((key, cand))
        for key, cand in joined:
            if len(fam.named) < self.max_members and self._may_join(fam, cand) \
                    and self._content_fits(family, fam, key):
                self._name(fam, key)

    def _mixed_parts(self, fam: _Family) -> set:
        """The families that ``min_mixed_share`` or more of a mixed incident's named members'
        requests keep to (their counts at joining: _Candidate.families)."""
        counts: dict[int, int] = {}
        for key in fam.named:
            member = self._keys.get(key)
            if member is not None:
                for part, n in member.families.items():
                    counts[part] = counts.get(part, 0) + n
        total = sum(counts.values())
        return {part for part, n in counts.items() if n >= self.min_mixed_share * total}

    def _baseline(self, fam: _Family, quiet: int, since: int | None = None) -> float:
        """Members the family's ordinary history predicts in one window: ``quiet`` of its
        members (``fam.quiet``, or those on a timer's beat) left the window without being named
        in an incident (a wave's own members would raise the bar in the middle of a long wave),
        per window of its history (0 without history) since ``since`` (its first member's first
        request; ``fam.first_ts`` unless given)."""
        history_ms = self._clock - 2 * self.window_ms - (fam.first_ts if since is None else since)
        if quiet <= 0 or history_ms <= 0:
            return 0.0
        return quiet * self.window_ms / max(history_ms, self.window_ms)

    def _join(self, key: str, cand: _Candidate, family: int) -> list[dict]:
        cand.family = family
        fam = self._families.setdefault(family, _Family())
        if fam.first_ts < 0:
            fam.first_ts = cand.first_ts
        sketch = cand.sketch()
        fam.recent[key] = (cand.first_ts, sketch)
        self._profile_add(fam, sketch, 1)
        # Kept two windows back from the latest member's first request; the wave is counted
        # around this member's own first request, not the records' arrival time, so that
        # partitions processed at their own pace (a backlog, a restart) find the same waves.
        horizon = self._clock - 2 * self.window_ms
        while fam.recent and (next(iter(fam.recent.values()))[0] < horizon or len(fam.recent) > self.max_members):
            gone, (_, gone_sketch) = fam.recent.popitem(last=False)
            self._profile_add(fam, gone_sketch, -1)
            gone_cand = self._keys.get(gone)
            if gone_cand is None or not gone_cand.named:
                fam.quiet += 1
                fam.quiet_beat += gone_cand is not None and self._keeps_beat(gone_cand)
        # (a late member of fewer requests not named joined the open incident only: it counts
        # toward no wave; one named in it is as much a member as those it was named with)
        wave = [k for k, (first, _) in fam.recent.items()
                if abs(first - cand.first_ts) <= self.window_ms and not self.is_linked(k)
                and ((member := self._keys.get(k)) is None or member.named or member.events >= self.min_key_events)]
        # A wave: more members arrived in one window than min_members and than the family's own
        # history predicts. Members join an open incident only while its wave lasts: a family
        # open for good would name every ordinary young user who later keeps to it. Mature keys
        # judged as young ones for their beat (_on_beat) count toward a wave of members on a
        # beat only (below).
        promoted = {k for k in wave if (member := self._keys.get(k)) is not None and member.on_beat}
        floor = self._wave_floor(family)
        young_wave = len(wave) - len(promoted) >= max(floor, self.baseline_ratio * self._baseline(fam, fam.quiet))
        # Or a wave of members on a timer's beat, more than the family's history of such: its
        # ordinary young users write at a person's pace (stress-unwrapped +2000: a busy
        # free-form family's 45 quiet members hid a hydra's heads, each on its rotation's beat).
        # Such a wave is of its members on a beat only: the people of the family beside it, a
        # quick session of chat among them, are not named in it.
        beat = [k for k in wave if (member := self._keys.get(k)) is not None and self._keeps_beat(member)]
        beat_wave = len(beat) >= max(floor, self.baseline_ratio * self._baseline(fam, fam.quiet_beat))
        if not young_wave and not beat_wave:
            return []
        alerts = []
        if fam.incident is not None and cand.first_ts - fam.totals[5] > self.window_ms:
            # A wave a window after the open incident's latest member began: a new incident.
            alerts.extend(self._close(family, fam))
        if fam.incident is None:
            # Members whose content is the wave's, not ordinary traffic's: young users who keep
            # to free-form requests arrive during a wave too, about what everyone asks about.
            # (judged once: the wave holds every member on a beat)
            fitting = [k for k in (wave if young_wave else beat) if self._content_fits(family, fam, k)]
            members, beat_only = [], False
            if young_wave and len(fitting) - len(promoted.intersection(fitting)) >= floor:
                members = fitting  # (fewer: a burst of young users with nothing in common but the family)
            elif beat_wave:
                on_beat = set(beat)
                members, beat_only, wave = [k for k in fitting if k in on_beat], True, beat
            if len(members) < floor:
                return alerts
            if self._overlap(members) > self.max_overlap:
                return alerts  # many keys re-sending one set: an evaluation or a popular benchmark
            first = min(fam.recent[k][0] for k in members)
            fam.beat_only = beat_only
            fam.incident = "cluster:cohort-" + member_family_name(family) + "-" + datetime.fromtimestamp(
                first // DAY_MS * DAY_MS / 1000, timezone.utc).strftime("%Y%m%d")
            for member in members:
                self._name(fam, member)
            self._name_earlier(fam, set(wave))
            for member, entry in list(fam.mature_recent.items()):
                self._name_mature(fam, member, self._mature.get(member), entry[1])
            self._name_waiting(family, fam)
            fam.rejudged_at = len(fam.recent)
        elif len(fam.named) < self.max_members and not self.is_linked(key) and self._may_join(fam, cand) and \
                self._content_fits(family, fam, key):
            self._name(fam, key)
        if fam.incident is not None and _of_no_one_shape(family) and \
                len(fam.recent) >= self.rejudge_growth * fam.rejudged_at:
            self._rejudge_unfit(family, fam)
        alerts.extend(self._send_or_hold(family, fam))
        return alerts

    def _send_or_hold(self, family: int, fam: _Family) -> list[dict]:
        """The open incident's alert, re-sent once its members grew by ``regrow`` or its
        ``update_interval_ms`` passed; else members named since its last alert wait in
        ``_pending`` for _due_updates."""
        if len(fam.named) >= fam.sent * self.regrow or self._clock - fam.updated_ts >= self.update_interval_ms:
            return self._alert(family, fam)
        if len(fam.named) > fam.sent:
            self._pending.add(family)
        return []

    def _name_earlier(self, fam: _Family, counted: set) -> None:
        """Name the members that began within the window before the new incident's earliest
        member (or after its latest) but were not counted in its wave (``counted``: the wave is
        counted around the member that opened it): a cohort's first members trickle in before
        its wave. Not counted, they are judged as a mature key is (_name_mature), in every
        family: nearly every answer at harvest length and the wave's profile fitting their
        prompts by the closer ``_mature_bar``. An evaluation of the family gets short graded
        answers; a young user of it is about what everyone asks about."""
        earliest, latest = fam.totals[4], fam.totals[5]
        for key, first, sketch, cand in self._unnamed_members(fam):
            if key not in counted and earliest - self.window_ms <= first <= latest + self.window_ms \
                    and self._may_join(fam, cand) and cand.short_answers <= self.max_mature_short_share * cand.reported \
                    and self._reaches(self._affinity(fam, sketch, openings=True), self._mature_bar(sketch[1]), cand):
                self._name(fam, key)

    def _rejudge_unfit(self, family: int, fam: _Family) -> None:
        """Judge again the wave's machine-paced members whose content did not fit it: a member
        judged while the wave was young had few members of its own cohort among its nearest
        (in a family several cohorts sweep at once, the first members of each find mostly the
        others'); it fits them once they have joined. Asked each time the family's recent
        members grew by ``rejudge_growth``: a few times per wave, each a vectorised fit per
        unfit member."""
        fam.rejudged_at = len(fam.recent)
        latest = fam.totals[5]
        for key, first, _, cand in self._unnamed_members(fam):
            if cand.unfit and abs(first - latest) <= self.window_ms and self._machine_paced(cand) \
                    and self._may_join(fam, cand) and self._content_fits(family, fam, key):
                self._name(fam, key)

    def _unnamed_members(self, fam: _Family):
        """The family's recent young members not named (nor linked since), as (key, first
        request ts, sketch, candidate), while its incident has room for more."""
        for key, (first, sketch) in list(fam.recent.items()):
            if len(fam.named) >= self.max_members:
                return
            cand = self._keys.get(key)
            if cand is not None and not cand.named and not self.is_linked(key):
                yield key, first, sketch, cand

    def _learn_background(self, simhash: int, opening: int = -1) -> None:
        self._background_pending.append(simhash)
        if opening >= 0:
            _add_openings(self._background_openings, _opening_buckets(opening), 1, at=0)
            self._background_opened += 1
        if self._background_total + len(self._background_pending) >= self.background_size:
            self._fold_background()
            self._background = [n // 2 for n in self._background]
            self._background_total //= 2
            self._background_openings = [n // 2 for n in self._background_openings]
            self._background_opened //= 2

    def _fold_background(self) -> None:
        """Count the pending SimHashes' bits into ``_background``.

        >>> det = CohortDetector()
        >>> for h in (0b101, 0b100, 2**63):
        ...     det._learn_background(h)
        >>> det._fold_background()
        >>> det._background[:3], det._background[63], det._background_total
        ([1, 0, 2], 1, 3)
        """
        pending = self._background_pending
        if not pending:
            return
        words = np.array(pending, dtype="<u8").view(np.uint8).reshape(len(pending), 8)
        counts = np.unpackbits(words, axis=1, bitorder="little").sum(axis=0)
        self._background = [n + int(c) for n, c in zip(self._background, counts)]
        self._background_total += len(pending)
        pending.clear()

    @staticmethod
    def _profile_add(fam: _Family, sketch, sign: int) -> None:
        CohortDetector._profile_add_to(fam.profile, sketch, sign)
        fam.profile_total += sign * sketch[1]

    @staticmethod
    def _profile_add_to(profile: list, sketch, sign: int) -> None:
        for i, count in enumerate(sketch[0]):
            profile[i] += sign * count
        _add_openings(profile, _openings_of(sketch), sign)

    def _content_fits(self, family: int, fam: _Family, key: str) -> bool:
        """Whether a member of a wave (in ``fam.recent``) is about what the wave is about: the
        wave's profile, or its nearest members' (the cheaper test first). Asked of free-form
        families only: an item shape (options, an answer label, math, code) is itself what the
        members share."""
        cand = self._keys.get(key)
        if not _is_free_form(family) and not (cand is not None and cand.partial):
            return True
        sketch = fam.recent[key][1]
        # How its prompts open counts once the family's incident is open: whether a wave exists
        # stands on what its members are about (SimHash bits alone). One corpus's ordinary users
        # open their requests alike too ("Given this paragraph about ..."): fitting by openings,
        # 29 casual keys made a wave of their own on fabricated-conversations-c.
        openings = fam.incident is not None
        # A late member's sketch of a few prompts strays more: the bar rises by the square root
        # of how many fewer it has, and its pace lowers no bar (it is what let it join).
        late = cand is not None and cand.events < self.min_key_events
        bar = self.min_content_affinity * math.sqrt(self.min_key_events / max(1, cand.events)) if late \
            else self.min_content_affinity
        fits = self._reaches(self._affinity(fam, sketch, openings=openings), bar, cand)
        if not fits:
            machine = cand is not None and not late and self._machine_paced(cand)
            bar = self.min_machine_neighbour_affinity if machine or self._draws_on_incident(fam, cand) \
                else self.min_neighbour_affinity
            fits = self._reaches(self._neighbour_affinity(fam.recent, key, sketch, openings=openings), bar, cand)
        by_clock = not fits and self._shares_clock(fam, cand)
        if cand is not None:
            cand.unfit = not fits and not by_clock  # (judged again as the wave grows: _rejudge_unfit)
            cand.by_clock = by_clock
        return fits or by_clock

    def _keeps_rotation_clock(self, cand: _Candidate) -> bool:
        """Sent on a clock's beat (``_keeps_clock``) a minute or more apart on average: at machine
        rate the gaps are the model's latency, alike for every script, no scheduler's clock."""
        return self._keeps_clock(cand) and cand.gap_sum >= self.machine_gap_ms * cand.gaps

    def _clock_bucket(self, cand: _Candidate) -> int:
        """Its mean gap per request, in buckets of ``clock_tolerance`` (log scale)."""
        return round(math.log(max(1.0, cand.gap_sum / cand.gaps)) / self._clock_step)

    def _shares_clock(self, fam: _Family, cand: _Candidate | None) -> bool:
        """Whether ``cand`` keeps a clock's beat (``_keeps_clock``) with the mean gap of
        ``min_clock_peers`` or more of the open incident's members named on their content: the
        heads of one scheduler's rotation."""
        if cand is None or not fam.clocks or fam.incident is None or not self._keeps_rotation_clock(cand):
            return False
        bucket = self._clock_bucket(cand)
        return fam.clocks.get(bucket - 1, 0) + fam.clocks.get(bucket, 0) + fam.clocks.get(bucket + 1, 0) \
            >= self.min_clock_peers

    @staticmethod
    def _reaches(fit: float, bar: float, cand: _Candidate | None) -> bool:
        """Whether a fit (``_affinity_to``, ``_neighbour_affinity``) reaches ``bar``; if it does,
        notes on ``cand`` whether only by how its prompts open (for the alert)."""
        if fit < bar:
            return False
        if cand is not None:
            cand.by_openings = fit - getattr(fit, "openings", 0.0) < bar
        return True

    def _may_join(self, fam: _Family, cand: _Candidate) -> bool:
        """Whether a young member may join the family's open incident: any, but only one on a
        timer's beat when the incident's wave was one of such members only."""
        return not fam.beat_only or self._keeps_beat(cand)

    def _machine_paced(self, cand: _Candidate) -> bool:
        """Sent at machine rate, or on a timer's regular beat (``max_paced_variation``)."""
        return cand.at_machine_rate() or self._keeps_beat(cand)

    def _keeps_beat(self, cand: _Candidate) -> bool:
        """Sent on a timer's regular beat: gaps that vary by under ``max_paced_variation``, over
        ``min_key_events`` - 1 gaps or more, however long they are (a late member of fewer
        requests, over every gap it has, ``min_late_events`` - 1 at least: _late_member_family)."""
        return cand.gaps >= self._gaps_to_tell(cand) and cand.gap_variation() < self.max_paced_variation

    def _keeps_clock(self, cand: _Candidate) -> bool:
        """Sent on a clock's beat: gaps that vary by under ``max_clock_variation`` (a scheduler's,
        not a person's: a quick session varies by 0.3 and more), over every gap it has (a mature
        key's first ``min_mature_records``), ``min_late_events`` - 1 at least.

        >>> det = CohortDetector()
        >>> clock, session = _Candidate(0, events=8), _Candidate(0, events=8)
        >>> for gap in (5_460_000, 5_500_000, 5_420_000, 5_470_000, 5_450_000, 5_480_000, 5_440_000):
        ...     clock.gaps += 1; clock.gap_sum += gap; clock.gap_squares += gap * gap
        >>> for gap in (290_000, 130_000, 187_000, 272_000, 210_000, 305_000, 110_000):
        ...     session.gaps += 1; session.gap_sum += gap; session.gap_squares += gap * gap
        >>> det._keeps_clock(clock), det._keeps_clock(session), det._keeps_beat(session)
        (True, False, True)
        """
        return cand.gaps >= self._gaps_to_tell(cand) and cand.gap_variation() < self.max_clock_variation

    def _gaps_to_tell(self, cand: _Candidate) -> int:
        """The gaps a pace is told by: ``min_key_events`` - 1, or every gap of a late member of
        fewer requests, ``min_late_events`` - 1 at least (_keeps_beat, _keeps_clock)."""
        if cand.events >= self.min_key_events:
            return self.min_key_events - 1
        return max(cand.events, self.min_late_events) - 1

    def _draws_on_incident(self, fam: _Family, cand: _Candidate | None) -> bool:
        """Whether ``cand`` re-sent ``min_items_from_named`` items first sent by members named
        in the family's open incident."""
        if cand is None or fam.incident is None or len(cand.sources) < self.min_items_from_named:
            return False
        named = set(fam.named)
        return sum(source in named for source in cand.sources) >= self.min_items_from_named

    def _neighbour_affinity(self, members: OrderedDict, key: str, sketch, ordinary: list | None = None,
                            openings: bool = False) -> float:
        """How much likelier a member's prompts are under its ``neighbours`` nearest recent
        members' pooled sketches (``members``: key -> (first request ts, sketch, ...), the
        family's recent young members or its mature ones) than under ordinary traffic's (mean log ratio per prompt, as
        ``_affinity``). Nearest: the cosine of their bit rates' departures from ordinary
        traffic's, so that one cohort's members find each other in a family several cohorts
        sweep at once. Vectorised over the family's recent members (at most ``max_members``);
        asked only of members the wave's profile did not take.

        >>> det = CohortDetector(neighbours=2)
        >>> fam = _Family()
        >>> for k, word in enumerate([0x0F0F, 0x0F0F, 0xF0F0_0000, 0x0F0F]):
        ...     counts = bytearray(64)
        ...     for i in range(64):
        ...         counts[i] = 8 * (word >> i & 1)
        ...     fam.recent[f"k{k}"] = (0, (bytes(counts), 8))
        >>> near = {k: det._neighbour_affinity(fam.recent, k, fam.recent[k][1]) for k in ("k0", "k2")}
        >>> near["k0"] > near["k2"]  # k0 has two like it, k2 none
        True
        """
        bits, n = sketch[0], sketch[1]
        others = [entry[1] for k, entry in members.items() if k != key and entry[1][1] > 0]
        if n <= 0 or not others:
            return 0.0
        all_rates = self._ordinary_rates() if ordinary is None else ordinary
        ordinary = np.asarray(all_rates[:_SIMHASH_BITS], dtype=float)
        counts = np.frombuffer(b"".join(sk[0] for sk in others), dtype=np.uint8).reshape(len(others), _SIMHASH_BITS)
        totals = np.fromiter((sk[1] for sk in others), dtype=float, count=len(others))
        own_counts = np.frombuffer(bits, dtype=np.uint8).astype(float)
        closeness = _directions(counts, totals, ordinary) @ _directions(own_counts[None, :], np.array([float(n)]),
                                                                        ordinary)[0]
        nearest = np.argsort(-closeness, kind="stable")[:self.neighbours]
        pooled, pooled_n = counts[nearest].sum(axis=0), totals[nearest].sum()
        p_near = (pooled + self.profile_prior * ordinary) / (pooled_n + self.profile_prior)
        ratio = own_counts @ np.log(p_near / ordinary) + (n - own_counts) @ np.log((1 - p_near) / (1 - ordinary))
        opening_part = 0.0
        if openings and _openings_of(sketch):
            # The nearest (by what they are about) pooled into a profile of openings too.
            pooled_openings = [0] * _PROFILE_SIZE
            for i in nearest:
                _add_openings(pooled_openings, _openings_of(others[i]), 1)
            opening_part = self._opening_fit(_openings_of(sketch), pooled_openings, int(pooled_n), all_rates) / n
        return _Fit(float(ratio) / n + opening_part, opening_part)

    def _affinity(self, fam: _Family, sketch, own: bool = True, openings: bool = False) -> float:
        """``_affinity_to`` the family's profile of its recent young members."""
        return self._affinity_to(fam.profile, fam.profile_total, sketch, own, openings=openings)

    def _affinity_to(self, profile: list, profile_total: int, sketch, own: bool = True,
                     ordinary: list | None = None, openings: bool = False) -> float:
        """How much likelier a member's prompts are under the other recent members' profile
        than under ordinary traffic's: the mean log-likelihood ratio per prompt of its SimHash
        bits, each bit a coin per profile (its own prompts left out of the wave's). Keys sweeping
        one item set share its vocabulary, which biases SimHash bits alike (> 0); a person's
        requests are about what everyone's are (<= 0). Without a sketch (records of an older
        worker): 0.0. ``ordinary``: each bit's rate in ordinary traffic (_ordinary_rates).
        ``openings``: how its prompts open counts too (_opening_fit).
        """
        bits, n = sketch[0], sketch[1]
        if n <= 0:
            return 0.0
        # own: the sketch is in the profile (a young member), left out of it here
        others = max(0, profile_total - n) if own else profile_total
        if ordinary is None:
            ordinary = self._ordinary_rates()
        ratio = 0.0
        for i, count in enumerate(bits):
            p_ordinary = ordinary[i]
            # The wave's rate starts from ordinary traffic's, worth ``profile_prior`` prompts: a
            # small wave's few prompts cannot make a profile that people's prompts fit by chance.
            # (clamped: a key no longer in the profile counts as an outsider to it)
            p_wave = (min(max(0, profile[i] - own * count), others) + self.profile_prior * p_ordinary) / (
                others + self.profile_prior)
            ratio += count * math.log(p_wave / p_ordinary) + (n - count) * math.log((1 - p_wave) / (1 - p_ordinary))
        opening_part = 0.0
        if openings and _openings_of(sketch):
            own_openings = _openings_of(sketch) if own else b""
            opening_part = self._opening_fit(_openings_of(sketch), profile, others, ordinary, own_openings) / n
        return _Fit(ratio / n + opening_part, opening_part)

    def _opening_fit(self, openings: bytes, profile: list, others: int, ordinary: list,
                     own_openings: bytes = b"") -> float:
        """How much likelier a key's prompts' openings (``_Candidate.openings``) are under a
        profile's (``_profile_add_to``, of ``others`` prompts; ``own_openings``: the key's own,
        counted in it, left out) than under ordinary traffic's: for each of its distinct
        openings, the lesser log ratio of its two hashes' buckets (an opening of its own that
        shares one bucket with the profile's frequent one is not the profile's), summed and
        weighed by ``opening_weight``. Each opening bucket's rate starts from ordinary
        traffic's, as each bit's does.

        >>> det = CohortDetector(opening_weight=1.0)
        >>> ordinary = [0.5] * _SIMHASH_BITS + [1 / OPENINGS] * (2 * OPENINGS)
        >>> profile = [0] * _PROFILE_SIZE
        >>> _add_openings(profile, bytes([7, 9]) * 300, 1)  # 300 prompts opened one way
        >>> round(det._opening_fit(bytes([7, 9]), profile, 300, ordinary), 2)  # the same opening
        5.26
        >>> det._opening_fit(bytes([7, 10]), profile, 300, ordinary) < 0  # another: one bucket shared
        True
        >>> det._opening_fit(bytes([7, 9]) * 5, profile, 300, ordinary) == det._opening_fit(bytes([7, 9]), profile, 300, ordinary)
        True
        """
        own_counts = [0] * _PROFILE_SIZE
        _add_openings(own_counts, own_openings, 1)
        prior, fits, total = self.profile_prior, {}, 0.0
        # Each of its openings once, however often it opened so: a slice of an item set opens
        # in several of the set's ways; a person who opens every request alike has a habit (a
        # casual user who opened 13 requests "Classify ...", from one corpus a wave swept too,
        # was named at critical on content-cohort-aged when repeats counted).
        for k in {openings[k:k + 2]: k for k in range(0, len(openings), 2)}.values():
            lesser = math.inf
            for index in (_SIMHASH_BITS + openings[k], _SIMHASH_BITS + OPENINGS + openings[k + 1]):
                fit = fits.get(index)
                if fit is None:
                    p_ordinary = ordinary[index]
                    p_profile = (min(max(0, profile[index] - own_counts[index]), others)
                                 + prior * p_ordinary) / (others + prior)
                    fit = fits[index] = math.log(p_profile / p_ordinary)
                lesser = min(lesser, fit)
            total += lesser
        return self.opening_weight * total

    def _due_updates(self) -> list[dict]:
        """Members that joined an open incident since its last alert, or its members' requests
        grown by ``recount_growth``, once its interval passed."""
        if not self._pending:
            return []
        due = [family for family in self._pending
               if self._clock - self._families[family].updated_ts >= self.update_interval_ms]
        return [alert for family in sorted(due) for alert in self._alert(family, self._families[family])]

    def _name(self, fam: _Family, key: str, cand: _Candidate | None = None, sketch=None) -> None:
        """Name a member (``cand``, ``sketch``: a mature key's, which is not in ``fam.recent``)."""
        cand = cand or self._keys.get(key)
        if cand is None:
            return  # evicted since it joined: too old to name
        cand.named = True
        if key in fam.member_requests:
            return  # named already, as a candidate evicted since: one member, counted once
        fam.named.append(key)
        t = fam.totals
        t[0] += cand.events + cand.later
        t[7] += cand.events
        t[1] += cand.shared
        t[2] += cand.tokens
        t[3] += cand.reported
        t[4] = cand.first_ts if t[4] is None else min(t[4], cand.first_ts)
        t[5] = cand.first_ts if t[5] is None else max(t[5], cand.first_ts)
        affinity = self._affinity_to(fam.mature_profile, fam.mature_profile_total, sketch) \
            if sketch is not None and fam.mature_only else self._affinity(fam, sketch, own=False) \
            if sketch is not None else self._affinity(fam, fam.recent[key][1]) if key in fam.recent else 0.0
        t[6] += affinity
        fam.member_requests[key] = cand.events + cand.later
        if fam.mature_only and sketch is not None:
            self._profile_add_to(fam.core_profile, sketch, 1)
            fam.core_total += sketch[1]
        # why it was named, for the alert: camouflaged, or on its nearest members' content only
        few = cand.events < self.min_key_events
        fam.few += few
        # (a mixed set's member keeps to no one family by the set's design, not to hide: its
        # incident's family says so; camouflaged members interleave other requests)
        fam.partial += cand.partial and not few and cand.family != MIXED_ITEMS
        fam.by_neighbours += sketch is None and affinity < self.min_content_affinity and (
            _is_free_form(cand.family) or cand.partial)
        fam.paced += self._machine_paced(cand)
        fam.aged_on_beat += cand.on_beat
        fam.by_openings += cand.by_openings
        if cand.by_clock:
            fam.by_clock += 1
            cand.by_clock = False
        elif self._keeps_rotation_clock(cand):
            bucket = self._clock_bucket(cand)
            fam.clocks[bucket] = fam.clocks.get(bucket, 0) + 1

    def _overlap(self, members) -> float:
        stats = [self._keys[k] for k in members if k in self._keys]
        events = sum(s.events for s in stats)
        return sum(s.shared for s in stats) / events if events else 0.0

    def _excused(self, fam: _Family) -> dict[str, int]:
        """The named members whose latest records show a real product's evidence, held or
        pending (``exculpation.shows_product``), each with that status: a coding CLI's
        developers on new accounts sweep no item set, but their tool output is machine-paced
        free-form text that does not overlap, like a tool-use harvest's beside them
        (stress-agent-newcomers: 34 of 60 developers paged at critical in the harvest's cohort)."""
        excused = {}
        for key in fam.named:
            cand = self._keys.get(key) or self._mature.get(key)
            if cand is not None and shows_product(cand.product, cohort=True):
                excused[key] = cand.product
        return excused

    def _alert(self, family: int, fam: _Family) -> list[dict]:
        """The open incident's alert (none while every member named shows a real product's
        evidence after it was sent above info: it stays as last sent until one's fails).

        Its members are judged and counted all together (what the wave swept); the alert lists
        those without a product's evidence, and pages on their count. When every member shows
        it, all are listed at info, held as an exculpated detection (``exculpation.product_cap``):
        each member's own incident is capped at info on the same evidence or sent at info.
        """
        fam.sent, fam.updated_ts = len(fam.named), self._clock
        self._pending.discard(family)
        excused = self._excused(fam)
        products_only = len(excused) == len(fam.named) > 0
        if products_only and fam.raised:
            return []
        fam.raised |= not products_only
        events, shared, tokens, reported, first, last, affinity, judged = fam.totals
        fam.sent_requests = events
        # the share of items sent before by another key, as judged: applied to all they sent
        overlap = shared / judged if judged else 0.0
        covered = events - round(events * overlap)
        per_key = sorted(fam.member_requests.values()) or [0]
        listed = fam.named if products_only else [key for key in fam.named if key not in excused]
        n = len(listed)
        pending = sum(1 for status in excused.values() if status in PENDING) if products_only else 0
        capped = product_cap(products_only, n, pending)
        severity = Severity.INFO if capped else Severity.CRITICAL if n >= self.critical_members else Severity.WARNING
        return [Alert(
            alert_id=fam.incident,
            ts=_iso(self._clock),
            entity_type="cluster",
            entity_id=fam.incident.split(":", 1)[1],
            api_key_ids=sorted(listed),
            score=round(min(0.99, 0.65 + 0.3 * min(1.0, n / (2 * self.critical_members))), 4),
            severity=severity,
            reasons=[
                {"signal": "content_cohort", "value": member_family_name(family), "baseline": None, "weight": 1.0},
                # baseline: the family's usual members per window (of mature members alone, for a
                # wave of them)
                {"signal": "cohort_members", "value": n,
                 "baseline": round(self._baseline(fam, fam.mature_quiet, fam.mature_first_ts) if fam.mature_only
                                   else self._baseline(fam, fam.quiet), 1), "weight": 1.0},
                {"signal": "cohort_item_overlap", "value": round(overlap, 3), "baseline": self.max_overlap,
                 "weight": None},
                {"signal": "cohort_items_covered", "value": covered, "baseline": None, "weight": None},
                {"signal": "median_member_requests", "value": per_key[len(per_key) // 2], "baseline": None,
                 "weight": None},
                # joint coverage against one member's: the set the members split between them
                {"signal": "cohort_coverage_per_member",
                 "value": round(covered / max(1, per_key[len(per_key) // 2]), 1), "baseline": 1.0, "weight": None},
                # members' prompts: likelier under the wave's profile than ordinary traffic's (log ratio)
                {"signal": "cohort_content_affinity", "value": round(affinity / n, 3) if n else None,
                 "baseline": self.min_content_affinity, "weight": None},
                {"signal": "members_enrolled_within_hours", "value": round(((last or 0) - (first or 0)) / 3_600_000, 1),
                 "baseline": None, "weight": None},
                {"signal": "mean_output_tokens", "value": round(tokens / reported) if reported else None,
                 "baseline": self.min_harvest_tokens, "weight": None},
                # members on mature accounts: joined on content evidence beside the young wave
                {"signal": "cohort_mature_members", "value": fam.mature, "baseline": None, "weight": None},
                # members whose prompts fit their nearest members' (one of several cohorts in the family)
                {"signal": "cohort_members_fit_by_nearest_members", "value": fam.by_neighbours, "baseline": None,
                 "weight": None},
                # members that sent at machine rate or on a timer's beat: no person's pace
                {"signal": "cohort_machine_paced_members", "value": fam.paced, "baseline": None, "weight": None},
                # members whose prompts fit no content bar, named for sending on the clock of 8+
                # members named on their content (the same mean gap within ~6 %): a rotation's heads
                {"signal": "cohort_members_on_the_named_members_clock", "value": fam.by_clock, "baseline": None,
                 "weight": None},
                # members whose prompts fit the incident's only by how they open ("You are a ...")
                {"signal": "cohort_members_fit_by_openings", "value": fam.by_openings, "baseline": None,
                 "weight": None},
                # members that interleaved other requests with their items (camouflage), named on content
                {"signal": "cohort_camouflaged_members", "value": fam.partial, "baseline": None, "weight": None},
                # members that joined the open incident on fewer requests than a wave's members
                # need (baseline), on a clock's beat and named on content: a hydra's small heads
                # (and larger ones that began while it was open, named on their first requests)
                {"signal": "cohort_members_joined_on_few_requests", "value": fam.few, "baseline": self.min_key_events,
                 "weight": None},
                # members on aged accounts that sent on a rotation's beat, judged as young keys
                {"signal": "cohort_aged_members_on_a_beat", "value": fam.aged_on_beat, "baseline": None, "weight": None},
                {"signal": "linked_by", "value": "content and pace: keys on a timer's beat sweeping one item family"
                 if fam.beat_only else "content only: aged accounts sweeping one item set, their prompts alike"
                 if fam.mature_only else "content only: young accounts sweeping one item family",
                 "baseline": None, "weight": None},
            ] + ([] if products_only else excused_products(excused.keys())) + capped,
            events_seen=events,
            detector=self.detector,
        ).to_dict()]
