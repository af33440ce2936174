"""Whether a key's conversation claims (``conversation_id``, ``turn_index``) hold together."""
from __future__ import annotations

from .base import KeySignal

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
    """

    state_fields = ("n", "share", "claims", "broken", "ids", "marks", "kinds")

    def __init__(self, alpha: float = 0.03, ring: int = 16, history_ratio: float = 0.5, max_skip: int = 3) -> None:
        super().__init__()
        self.alpha = alpha
        self.ring = ring
        self.history_ratio = history_ratio
        self.max_skip = max_skip
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
        """Whether the event is a conversation turn: a follow-up claim that holds."""
        return x.get("turn", 0) > 0 and self.check(x) < 0

    def score_one(self, x: dict) -> float:
        return 0.0 if self.check(x) < 0 else 1.0

    def learn_one(self, x: dict) -> None:
        kind = self.check(x)
        turn = x.get("turn", 0)
        if turn > 0:
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
