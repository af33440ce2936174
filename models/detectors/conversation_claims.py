"""Whether a key's conversation claims (``conversation_id``, ``turn_index``) hold together."""
from __future__ import annotations

from .base import KeySignal
from .inter_arrival_timing import regularity

# Why a follow-up claim does not hold (index into ``kinds``, named in alert reasons)
UNOPENED, TURN_BACKWARDS, TURNS_SKIPPED, NO_HISTORY = range(4)
CLAIM_KINDS = ("unopened", "turn_backwards", "turns_skipped", "no_history")
_OPENED = 1 << 31  # mark bit: the key sent this conversation's turn 0 (and every claim since held)
_TURN_SHIFT, _TURN_MAX = 24, 127
_CONTEXT_MAX = (1 << _TURN_SHIFT) - 1


def _mark(opened: bool, turn: int, context: int) -> int:
    return (_OPENED if opened else 0) | (min(turn, _TURN_MAX) << _TURN_SHIFT) | min(max(context, 0), _CONTEXT_MAX)


def check_claim(ids: list, marks: list, conversation: int, turn: int, sent: int, max_skip: int,
                history_ratio: float) -> int:
    """``ConversationClaims.check`` on a key's sketch (``ids``, ``marks``): -1 when the claim
    holds or there is none, else why it does not. A function of its arguments, so that the
    pipeline's fused step (``models.fused_signals``) runs the detector's own rule."""
    if turn <= 0:
        return -1
    if not conversation or conversation not in ids:
        return UNOPENED
    mark = marks[ids.index(conversation)]
    if not mark & _OPENED:
        return UNOPENED
    last_turn = (mark >> _TURN_SHIFT) & _TURN_MAX
    turn = min(turn, _TURN_MAX)
    if turn < last_turn:
        return TURN_BACKWARDS
    if turn > last_turn + max_skip:
        return TURNS_SKIPPED
    context = mark & _CONTEXT_MAX
    if context and sent > 0 and sent < history_ratio * context:
        return NO_HISTORY
    return -1


def new_item(style: float, content_words: int, output_tokens: int, item_words: int, plain_item_words: int,
             long_answer_tokens: int) -> bool:
    """Whether a follow-up whose claim holds reads as a new item rather than an answer to the
    previous turn: a task of its own with extraction style (``item_words`` content words or
    more), or without any, a task of its own (``plain_item_words``) answered at length
    (``long_answer_tokens``): what a harvest keeps. People's follow-ups match the first test
    2-3 % of the time, and one or the other 15-18 % (dev-s1: casual users 2.7 % and 16.6 %,
    resellers' users 2.3 % and 15.5 %); a sweep that opens every conversation itself and
    resends the history (fabricated-conversations-b/-c) sends its next item as turn 1, 2, 3:
    97 % of its wrapped items by the first test, 67-77 % of plain ones answered by a reasoning
    model by the second. So the rule is asked only of keys whose follow-ups are seldom a
    person's short ones: see ``ConversationClaims`` (``person_share``), also for the students
    of a homework app, who paste their next question into the conversation. A lower answer
    bar, 200 tokens, made 43-53 % of people's follow-ups new items: it is asked only of keys
    whose follow-ups are almost never a person's (``counts_as_turn``'s ``rare_person_share``).

    >>> new_item(1.0, 25, 300, 8, 6, 900), new_item(1.0, 2, 900, 8, 6, 900), new_item(0.0, 25, 300, 8, 6, 900)
    (True, False, False)
    >>> new_item(0.0, 12, 1500, 8, 6, 900), new_item(0.0, 4, 1500, 8, 6, 900)
    (True, False)
    """
    if style > 0:
        return content_words >= item_words
    return content_words >= plain_item_words and output_tokens >= long_answer_tokens


# A key on a clock: its requests' regularity (``InterArrivalTiming``) at the harvest's bar for a
# script (people's keys 0.2-0.47 on dev-s1, scripts 0.6 and up), once it has the few dozen
# gaps the estimate needs. No person answers the previous turn on a clock. (The pipeline's
# harvest takes both from here: one bar for a script.)
CLOCK_REGULARITY = 0.65
CLOCK_MIN_EVENTS = 30


def on_a_clock(events: int, gap_var: float) -> bool:
    """Whether a key of ``events`` events whose log gaps vary by ``gap_var`` sends on a clock.

    >>> on_a_clock(100, 0.01), on_a_clock(100, 1.0), on_a_clock(10, 0.01)
    (True, False, False)
    """
    return events >= CLOCK_MIN_EVENTS and regularity(gap_var) >= CLOCK_REGULARITY


# Where a key's share of a person's follow-ups starts (a new key, and one read from a layout
# without it): a key is not presumed a sweep's until its own follow-ups say so (a homework app's
# first turns include pasted questions: from 0, its first dozen events' new questions stopped
# counting as conversation, and 3 of its keys were paged at warning, one critical, on
# stress-product-negatives-c; from 0.5, a sweep's follow-ups bring it under ``person_share``
# in 12 turns).
PERSON_PRIOR = 0.5


def learn_person(person: float, turn_words: int, person_words: int, alpha: float) -> float:
    """The key's share of a person's follow-ups after one more follow-up claim of
    ``turn_words`` content words (a person's when at most ``person_words``; counted alike in
    every language: ``multilingual.turn_words``)."""
    return (1.0 - alpha) * person + alpha * (1.0 if turn_words <= person_words else 0.0)


def added_tokens(ids: list, marks: list, conversation: int, sent: int, prompt_chars: int) -> int:
    """The input tokens a follow-up adds to its conversation: what it sent beyond the previous
    turn's context (input + output, kept in the key's sketch), and at most what its own text
    (``prompt``: the last user turn, in the contract) can be: ``prompt_chars`` / 3 + 1 (English
    runs ~4 characters a token). The bound holds when a client's history is not the previous
    turn's exactly (the stream generator resends every earlier request whole, so its input
    doubles each turn); a client that trims old turns sends less than the context, and then
    only the bound is known."""
    bound = prompt_chars // 3 + 1
    if sent > 0 and conversation in ids:
        context = marks[ids.index(conversation)] & _CONTEXT_MAX
        if context and sent > context:
            return min(sent - context, bound)
    return min(sent, bound) if sent > 0 else sent


def remember_turn(ids: list, marks: list, conversation: int, turn: int, kind: int, sent: int, got: int) -> None:
    """Move the event's conversation to the front of the key's sketch (updated in place), with
    its turn, its context (input + output tokens) and whether the key opened it."""
    # move-to-front: the sketch keeps the conversations the key used last
    if conversation in ids:
        at = ids.index(conversation)
        previous = marks[at]
    else:
        at, previous = len(ids) - 1, 0
    del ids[at], marks[at]
    context = sent + got if sent > 0 and got >= 0 else previous & _CONTEXT_MAX
    opened = turn <= 0 or (kind < 0 and bool(previous & _OPENED))
    ids.insert(0, conversation)
    marks.insert(0, _mark(opened, turn, context))


class ConversationClaims(KeySignal):
    """Checks each follow-up claim (``x["turn"] > 0``) against what the key itself sent.

    The client sets ``conversation_id`` and ``turn_index``: a sweep that claims turn 5 of a
    conversation is discounted as conversation unless the claim is checked. A claim holds
    when the key opened that conversation (sent its turn 0, kept in a small LRU sketch of
    the key's ``ring`` most recent conversations: 32-bit id hash -> opened, last turn,
    context tokens), the turn moves forward without skipping turns the key never sent, and
    the request carries the history: a chat API is stateless, so turn t resends turns
    < t, and its input tokens are at least ``history_ratio`` x the previous turn's input +
    output (the ratio leaves room for clients that trim old turns). Unknown usage (absent,
    -1, or 0 for a refused request) is not held against the claim.

    A claim that holds can still be a sweep's: a key that opens every conversation itself and
    resends the history can send its next item as turn 1, 2, 3, and each counted as
    conversation (which discounts extraction style). So a held follow-up that is a
    ``new_item`` does not count as a turn, unless the key's follow-ups are often a
    person's: ``person`` is the exponentially weighted share of its follow-up claims (held or
    not) with at most ``person_words`` content words ("why?", "and for b)?", "warum?", "为什么？":
    ``x["turn_words"]``, counted alike in every language by ``multilingual.turn_words``), and from
    ``person_share`` up every held follow-up counts. A homework app's students paste their next
    question into the conversation as well as ask "why?" (stress stream product-negatives-c:
    0.5-0.7); a sweep's follow-ups are all items (0.0-0.1). A sweep that mixes in one short turn
    in six to pass costs itself a sixth more requests, each answered in context it does not want. Whatever the key's
    person share, a follow-up sent before the previous answer could be read (``x["unread"]``,
    from ``ReadingPace``) with a task of its own (``unread_item_words``) is no turn either: a
    sweep inside conversations it opened sends its next item while the last answer streams
    (fabricated-conversations-c: 55-100 % of its requests), however short the item or the
    answer it gets. Nor is one from a key on a clock (``x["clocked"]``, ``on_a_clock``: the
    pipeline's reading of the key's pace before the event): a sweep that waits for each answer
    to be read still sends its items on a script's beat (fabricated-conversations-e).

    ``score_one`` is 1.0 for an event whose follow-up claim does not hold, else 0.0;
    ``level`` is its exponentially weighted share over the key's events; ``holds`` tells
    the pipeline whether the event is a conversation turn; ``kinds`` counts the broken
    claims by reason (``CLAIM_KINDS``), saturating at 65535.

    Parameters
    ----------
    alpha
        Weight of each new event in ``level``.
    ring
        How many recent conversations the sketch keeps (8 bytes each in the key's state).
    history_ratio
        The share of the previous turn's context a follow-up must resend.
    max_skip
        The most turns a follow-up may move ahead of the last one the key sent.
    item_words, plain_item_words, long_answer_tokens
        When a held follow-up is a new item (``new_item``): content words with extraction
        style; content words without, and the answer's output tokens.
    person_words, person_alpha, person_share, person_prior
        A person's follow-up: at most this many content words; the weight of each
        follow-up claim in ``person``; the share from which every held follow-up counts as a turn;
        where ``person`` starts, before the key's first follow-up claim.
    unread_item_words
        A follow-up sent before the previous answer could be read, or from a key on a clock, is
        a new task with this many content words or more.
    rare_person_share, rare_person_answer_tokens
        Under this ``person``, a plain new item is one answered at this many tokens or more
        (``long_answer_tokens`` above it).

    Examples
    --------
    >>> claims = ConversationClaims(alpha=0.5)
    >>> opened = {"conversation": 11, "turn": 0, "input_tokens": 40, "output_tokens": 300}
    >>> claims.learn_one(opened)
    >>> answer = {"conversation": 11, "turn": 1, "input_tokens": 360, "output_tokens": 200}
    >>> claims.holds(answer), claims.score_one(answer)
    (True, 0.0)
    >>> claims.learn_one(answer)
    >>> fabricated = {"conversation": 99, "turn": 3, "input_tokens": 50, "output_tokens": 900}
    >>> claims.holds(fabricated), claims.score_one(fabricated)  # never opened by this key
    (False, 1.0)
    >>> claims.learn_one(fabricated)
    >>> claims.claims, claims.broken, claims.kinds
    (2, 1, [1, 0, 0, 0])
    >>> item = {"conversation": 11, "turn": 2, "input_tokens": 900, "output_tokens": 1200,
    ...         "extraction_style": 1.0, "content_words": 24}
    >>> round(claims.person, 2), claims.holds(item)  # two short follow-ups after the prior (0.5)
    (0.6, True)
    >>> for turn in range(2, 16):  # turns that are each a new item: the key's follow-ups are not a person's
    ...     claims.learn_one(dict(item, turn=turn, input_tokens=2200 * turn))
    >>> round(claims.person, 2), claims.holds(dict(item, turn=16, input_tokens=2200 * 16))
    (0.14, False)
    """

    state_fields = ("n", "share", "claims", "broken", "ids", "marks", "kinds", "person")

    def __init__(self, alpha: float = 0.03, ring: int = 16, history_ratio: float = 0.5, max_skip: int = 3,
                 item_words: int = 8, plain_item_words: int = 6, long_answer_tokens: int = 500,
                 person_words: int = 3, person_alpha: float = 0.1, person_share: float = 0.15,
                 person_prior: float = PERSON_PRIOR, unread_item_words: int = 4, rare_person_share: float = 0.05,
                 rare_person_answer_tokens: int = 200) -> None:
        super().__init__()
        self.alpha = alpha
        self.ring = ring
        self.history_ratio = history_ratio
        self.max_skip = max_skip
        self.item_words = item_words
        self.plain_item_words = plain_item_words
        self.long_answer_tokens = long_answer_tokens
        self.person_words = person_words
        self.person_alpha = person_alpha
        self.person_share = person_share
        self.person_prior = person_prior
        self.unread_item_words = unread_item_words
        self.rare_person_share = rare_person_share
        self.rare_person_answer_tokens = rare_person_answer_tokens
        self.person = person_prior  # share of the follow-ups with at most person_words content words
        self.share = 0.0
        self.claims = 0  # follow-up claims seen
        self.broken = 0  # of which did not hold
        self.ids = [0] * ring  # most recent first; 0 = empty
        self.marks = [0] * ring
        self.kinds = [0] * len(CLAIM_KINDS)

    @property
    def level(self) -> float:
        return self.share

    def check(self, x: dict) -> int:
        """-1 when the event makes no follow-up claim or its claim holds, else why it does not
        (``UNOPENED``, ``TURN_BACKWARDS``, ``TURNS_SKIPPED``, ``NO_HISTORY``)."""
        return check_claim(self.ids, self.marks, x.get("conversation", 0), x.get("turn", 0),
                           x.get("input_tokens", -1), self.max_skip, self.history_ratio)

    def holds(self, x: dict) -> bool:
        """Whether the event is a conversation turn: a follow-up claim that holds and, on a key
        whose follow-ups are seldom a person's, no new item, and no task sent unread (``counts_as_turn``). Such an item
        is not a broken claim (its ids and turns hold): it only does not count as conversation."""
        return x.get("turn", 0) > 0 and self.check(x) < 0 and self.counts_as_turn(
            self.person, x.get("extraction_style", 0.0), x.get("content_words", 0), x.get("output_tokens", -1),
            x.get("unread", False), x.get("clocked", False))

    def counts_as_turn(self, person: float, style: float, content_words: int, output_tokens: int,
                       unread: bool = False, clocked: bool = False) -> bool:
        """Whether a follow-up whose claim holds counts as a conversation turn, on a key whose
        share of a person's follow-ups is ``person`` (before this one): never when it came
        before the previous answer could be read (``unread``: ``ReadingPace``), or from a key on
        a clock (``clocked``: ``on_a_clock``), with a task of its own (``unread_item_words``
        content words or more: no one answers what they have not read, nor on a clock); else
        always on a key whose follow-ups are often a person's (``person`` at ``person_share`` or
        more), else unless it is a ``new_item``: answered at ``long_answer_tokens`` or more when
        plain, at ``rare_person_answer_tokens`` on a key whose follow-ups are almost never a
        person's (``person`` under ``rare_person_share``: from the prior, 22 or more follow-ups
        in a row of more than a few words). A sweep that opens every conversation and waits for
        each answer gets answers of 300-500 tokens for half its plain items
        (fabricated-conversations-e): each of those counted as a turn, a third of its requests
        stayed "conversation", and its harvest was never seen.

        >>> claims, no_rare = ConversationClaims(), ConversationClaims(rare_person_share=0.0)
        >>> no_rare.counts_as_turn(0.0, 0.0, 5, 1800), no_rare.counts_as_turn(0.0, 0.0, 5, 1800, unread=True)
        (True, False)
        >>> no_rare.counts_as_turn(0.0, 0.0, 2, 1800, unread=True)  # "and b)?" before reading: a turn still
        True
        >>> no_rare.counts_as_turn(0.0, 0.0, 12, 300), no_rare.counts_as_turn(0.0, 0.0, 12, 300, clocked=True)
        (True, False)
        >>> [claims.counts_as_turn(person, 0.0, 12, 300) for person in (0.2, 0.1, 0.01)]  # a plain item
        [True, True, False]
        """
        if (unread or clocked) and content_words >= self.unread_item_words:
            return False
        if person >= self.person_share:
            return True
        long_answer_tokens = self.rare_person_answer_tokens if person < self.rare_person_share \
            else self.long_answer_tokens
        return not new_item(style, content_words, output_tokens, self.item_words, self.plain_item_words,
                            long_answer_tokens)

    def prompt_tokens(self, x: dict) -> int:
        """The input tokens of the event's own prompt: for a held follow-up that is a new item
        (``holds`` is False though the claim holds), the item alone, without the history it
        resends (``added_tokens``); otherwise all its input tokens. A sweep that resends the
        history makes its prompts look like a conversation's context, and its answers no
        longer many times its prompts (fabricated-conversations-c: its typical prompt
        4,000-20,000 tokens for answers of 600-2,500)."""
        sent = x.get("input_tokens", -1)
        if x.get("turn", 0) > 0 and self.check(x) < 0 and not self.holds(x):
            return added_tokens(self.ids, self.marks, x.get("conversation", 0), sent, x.get("prompt_chars", 0))
        return sent

    def score_one(self, x: dict) -> float:
        return 0.0 if self.check(x) < 0 else 1.0

    def learn_one(self, x: dict) -> None:
        kind = self.check(x)
        turn = x.get("turn", 0)
        if turn > 0:
            words = x.get("turn_words", x.get("content_words", 0))  # (counted alike in every language)
            self.person = learn_person(self.person, words, self.person_words, self.person_alpha)
            self.claims += 1
            if kind >= 0:
                self.broken += 1
                self.kinds[kind] = min(65535, self.kinds[kind] + 1)
        self.share = self._ew(self.share, 0.0 if kind < 0 else 1.0)
        self.n += 1
        conversation = x.get("conversation", 0)
        if conversation:
            remember_turn(self.ids, self.marks, conversation, turn, kind, x.get("input_tokens", -1),
                          x.get("output_tokens", -1))
