"""ConversationClaims: a follow-up claim holds only against what the key itself sent."""
from __future__ import annotations

from distillguard.models.detectors import ConversationClaims
from distillguard.models.detectors.conversation_claims import (NO_HISTORY, TURN_BACKWARDS, TURNS_SKIPPED,
                                                               UNOPENED)


def turn(conversation: int, index: int, sent: int = -1, got: int = -1) -> dict:
    return {"conversation": conversation, "turn": index, "input_tokens": sent, "output_tokens": got}


def conversation(conversation: int, turns: int, answer: int = 300) -> list[dict]:
    """A real chat: turn t resends the history (every earlier prompt and answer)."""
    out, context = [], 0
    for t in range(turns):
        sent = context + 40
        out.append(turn(conversation, t, sent, answer))
        context = sent + answer
    return out


def learn(claims: ConversationClaims, events: list[dict]) -> list[int]:
    checked = []
    for x in events:
        checked.append(claims.check(x))
        claims.learn_one(x)
    return checked


def test_the_turns_of_a_conversation_the_key_opened_hold():
    claims = ConversationClaims()
    assert learn(claims, conversation(7, 6)) == [-1] * 6
    assert claims.claims == 5 and claims.broken == 0 and claims.level == 0.0


def test_a_follow_up_of_a_conversation_the_key_never_opened_does_not_hold():
    claims = ConversationClaims()
    # turn 3 of an id never seen, then its "turn 4": the key never sent turn 0 of it
    assert learn(claims, [turn(5, 3, 900, 300), turn(5, 4, 1300, 300)]) == [UNOPENED, UNOPENED]
    # a follow-up with no conversation id at all cannot be checked either
    assert learn(claims, [turn(0, 2)]) == [UNOPENED]
    assert claims.kinds == [3, 0, 0, 0] and claims.broken == claims.claims == 3


def test_an_id_opened_by_another_key_is_unopened_for_this_one():
    other, claims = ConversationClaims(), ConversationClaims()
    learn(other, conversation(42, 2))
    assert claims.check(turn(42, 2, 2000, 300)) == UNOPENED


def test_turns_that_go_back_or_skip_ahead_do_not_hold():
    claims = ConversationClaims()
    learn(claims, conversation(9, 4))
    assert claims.check(turn(9, 1)) == TURN_BACKWARDS
    assert claims.check(turn(9, 30)) == TURNS_SKIPPED
    # the same turn again (a retry after an error, a regenerated answer) holds
    assert claims.check(turn(9, 3)) == -1


def test_a_follow_up_that_does_not_resend_the_history_does_not_hold():
    claims = ConversationClaims()
    learn(claims, conversation(3, 3, answer=800))
    assert claims.check(turn(3, 3, sent=60, got=800)) == NO_HISTORY
    # unknown usage (not reported, or 0 on a refused request) is not held against the claim
    assert claims.check(turn(3, 3)) == -1 and claims.check(turn(3, 3, sent=0, got=0)) == -1


def test_a_sweep_reusing_a_few_ids_across_hundreds_of_requests_is_mostly_broken():
    claims = ConversationClaims()
    sweep = [turn(100 + i % 3, 1 + i, 80, 900) for i in range(300)]
    checked = learn(claims, sweep)
    assert sum(k >= 0 for k in checked) == 300 and claims.level > 0.9


def test_the_sketch_is_bounded_and_keeps_the_conversations_in_use():
    claims = ConversationClaims(ring=16)
    learn(claims, conversation(1, 1))
    context = 340
    for i in range(200):  # many one-off conversations (a browser sends an id with each)...
        learn(claims, conversation(1000 + i, 1))
        if i % 10 == 0:  # ...while the first one goes on
            x = turn(1, 1 + i // 10, context + 40, 300)
            assert claims.check(x) == -1
            claims.learn_one(x)
            context += 340
    assert len(claims.ids) == len(claims.marks) == 16
    # a conversation pushed out of the sketch by 16 newer ones can no longer be checked
    assert claims.check(turn(1000, 1, 400, 300)) == UNOPENED


def test_score_one_does_not_learn():
    claims = ConversationClaims()
    learn(claims, conversation(1, 2))
    before = claims.get_state()
    assert claims.score_one(turn(8, 4)) == 1.0 and claims.get_state() == before
