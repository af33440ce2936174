"""Feature extraction: the fast paths give the same features as the plain definitions."""
from __future__ import annotations

import random

import numpy as np
import pytest

from distillguard.models.events import parse_event
from distillguard.models.features import (JUDGING, PROCESS_ELICITATION, _h64, _simhash, _style, featurize, style_score,
                                          template_fingerprint)


def simhash_by_counting(words: list[str]) -> int:
    """The definition: bit i is set when more than half of the words' hashes have it set."""
    hashes = np.array([_h64(w) for w in words], dtype="<u8")
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    majority = (2 * bits.sum(axis=0, dtype=np.int32) > len(words)).astype(np.uint8)
    return int(np.packbits(majority, bitorder="little").view("<u8")[0])


@pytest.mark.parametrize("seed", range(5))
def test_simhash_lanes_equal_bit_counting(seed):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(rng.choice([3, 50, 5000]))]
    for n in (1, 2, 3, 4, 17, 100, 199, 200):
        words = [rng.choice(vocab) for _ in range(n)]
        assert _simhash(words) == simhash_by_counting(words), (seed, n)


def _event(prompt: str, system: str | None = None):
    doc = ('{"schema":"llm.request.v1","event_id":"e","ts":"2026-02-01T00:00:00Z","api_key_id":"k",'
           '"account_id":"a","model":"m","prompt":%s%s}')
    import json
    return parse_event((doc % (json.dumps(prompt), f',"system_prompt":{json.dumps(system)}' if system else "")).encode())


# "İ" lower-cases to two characters, "K" (Kelvin) to an ASCII k: slices of the lower-cased
# text are then not the lower-cased slices, and featurize must take the plain path.
TEXTS = ["Think step by step and show all your reasoning: what is 17 * 23?",
         "Question: " + "x " * 600 + "\nOptions:\n- a\n- b\nAnswer:",
         "İstanbul  \t question 12: \"quoted\"   Show your work step by step",
         "KELVIN rate the response on a scale of 1 to 10 " + "İ" * 900 + " final answer",
         "   ", "Rate the following response, step by step.\n" * 40,
         "a " * 150 + "İ" * 150 + " step by step " + "z" * 1000,  # the trigger sits where the slices differ
         "İ" * 300 + " hello world",
         # paraphrase cues: in the instruction zones, in the pasted middle only, split across both
         "Elaborate on each stage of your thinking.\n" + "lorem ipsum " * 200,
         "lorem ipsum " * 80 + "elaborate on each stage of your thinking " + "lorem ipsum " * 80,
         "Describe it.\n" + "lorem ipsum " * 150 + "\nin full detail",
         "İ" * 900 + " walk me through it in detail",
         # judging cues: the verdict asked at the end, the judged answer's section in the middle
         "Question: " + "lorem ipsum " * 60 + "\nReply: " + "dolor sit " * 60 + "\nIs the reply correct?",
         "Is the reply correct? " + "lorem ipsum " * 100 + "\nReply: dolor"]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_featurize_fast_paths_match_the_definitions(text):
    f = featurize(_event(text))
    assert f.template_hash == template_fingerprint(text)
    assert (f.style, f.families) == _style(text)
    with_system = featurize(_event(text, system="You are a grader. Score each answer."))
    assert (with_system.style, with_system.families) == _style(text + "\nYou are a grader. Score each answer.")


# Campaigns reword their elicitation; these ask for the reasoning without any phrase rule's
# wording. (benchmarks/stress/ builds whole streams of such campaigns.)
REWORDED = ["Elaborate on each stage of your thinking before concluding.",
            "Work through this problem methodically, narrating your logic at each point.",
            "Solve the following, making sure to document every intermediate deduction.",
            "Outline the logic you use, point by point, before the conclusion.",
            "I'd like a thorough, stepwise breakdown of the solution."]
# One cue group alone is how people ask.
ORDINARY = ["Explain how tides work.", "Describe your ideal weekend in Lisbon.", "Can you walk me through a tax form?",
            "What are the steps to renew a passport?", "Give me a detailed packing list for a week of hiking.",
            "My logic board died, what now?",
            # a summarising service's wrapper: "document" names the material
            "Summarise the document below in detail, section by section."]


@pytest.mark.parametrize("text", REWORDED)
def test_reworded_reasoning_elicitation_is_extraction_style(text):
    question = "A train leaves at 3pm at 60 km/h; when does it reach a town 150 km away?"
    for prompt in (f"{question}\n\n{text}", f"{text}\n\n{question}"):
        f = featurize(_event(prompt))
        assert f.style >= 0.6 and f.families & PROCESS_ELICITATION, prompt


@pytest.mark.parametrize("text", ORDINARY)
def test_one_cue_group_is_not_extraction_style(text):
    assert style_score(text) == 0.0


def test_reworded_cues_count_only_in_the_instruction_zones():
    pasted = "lorem ipsum dolor sit amet " * 40  # 1,080 characters of material
    instruction = "Elaborate on each stage of your thinking."
    assert style_score(f"{instruction}\n{pasted}") >= 0.6
    assert style_score(f"{pasted}\n{instruction}") >= 0.6
    assert style_score(f"{pasted[:600]}{instruction} {pasted}") == 0.0


QUESTION = "What is the boiling point of water at the top of Mount Everest?"
ANSWER = "About 70 degrees Celsius, because the air pressure is lower."


@pytest.mark.parametrize("wrapper", [
    "Question: {q}\nProposed solution: {a}\n\nIs the proposed solution correct? Give a verdict.",
    "You are an impartial judge. Compare the assistant's output below with an expert's.\n\nTask: {q}\nOutput: {a}",
    "{q}\n\nCandidate answer: {a}\n\nList the flaws in the candidate answer.",
    "Two assistants answered the same prompt.\nPrompt: {q}\n[1] {a}\n[2] {a}\nWhich one is more helpful?",
    "Make this response better:\n{a}\n(original request: {q})",
])
def test_reworded_grading_is_extraction_style(wrapper):
    f = featurize(_event(wrapper.format(q=QUESTION, a=ANSWER)))
    assert f.style >= 0.85 and f.families & JUDGING


@pytest.mark.parametrize("text", [
    "Is my answer correct? I got 42 for question 3.",          # no answer section
    "Which is better for a beginner, Python or Java?",          # a verdict word alone
    "Now, output:\n1/ a profile of the user\n2/ their interests",  # a section, no verdict asked
    "Reply: thanks, see you tomorrow",                         # a section and a judged word, no verdict
])
def test_ordinary_questions_about_answers_are_not_grading(text):
    assert not featurize(_event(text)).families & JUDGING


TOOL_USE = 1 << 4  # the tool-use / agent-trace family


@pytest.mark.parametrize("catalogue", [
    "Available actions: lookup(term), compute(expression), translate(text, lang). Respond with the actions, as JSON.",
    "You can call these functions: search(query), calculator(expr), fetch_url(url). Emit calls, one per line.",
    "Tools:\n- search(query: str): searches the web\n- calculator(expr=\"1+1\"): evaluates arithmetic",
    "The following operations are allowed; use them in order:\nread_file(path)\nwrite_file(path, text)",
])
def test_a_tool_catalogue_in_any_words_is_extraction_style(catalogue):
    f = featurize(_event(f"{catalogue}\n\n{QUESTION}"))
    assert f.families & TOOL_USE and f.style >= 0.7


@pytest.mark.parametrize("text", [
    "I wrote this function: foo(a, b), and it returns None. Why?",          # one signature
    "Refactor these functions: void initQueue() {\n  queue.len = 0;\n}\nInfo pop() {",  # code, not a list
    "The contract has these functions\n\ne4b8c38d => buyAlbum(bytes32[])\n8d0eb9f7 => buySong(bytes32[])",
    "Use max(a, b), min(a, b) and abs(x) to clamp the value.",              # calls, no catalogue heading
])
def test_pasted_code_with_calls_is_not_a_tool_catalogue(text):
    assert not featurize(_event(text)).families & TOOL_USE


def test_the_material_sketch_is_the_same_with_or_without_the_words_featurize_remembered():
    from distillguard.models import features

    long_text = " ".join(f"word{i % 97} 光合作用{i % 13}" for i in range(600))
    other = "A short letter to translate, nothing like the other one."
    features.featurize_text(long_text)
    remembered = features.material_sketch(long_text)
    features.featurize_text(other)  # featurize's last prompt is another now: the words are found again
    assert features.material_sketch(long_text) == remembered
    assert features.material_sketch(other) != remembered
    # all the words count, not the first 200 SimHash reads: the same words in another order match
    shuffled = " ".join(reversed(long_text.split(" ")))
    assert features.material_sketch(shuffled) == remembered
    assert features.featurize_text(shuffled).simhash != features.featurize_text(long_text).simhash
