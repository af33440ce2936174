"""A grading product's batches (models.products, ``graded_batches``): one frame, one question
and its rubric around many students' answers, then the next question. Its prompts carry every
grading word a rubric harvest does, at machine rate; what a harvest does not do is ask one
question many times over."""
from __future__ import annotations

import random
from datetime import timedelta

from distillguard.contracts.alert import is_exculpated
from distillguard.models.batches import GradedBatches, _State, line_marks
from distillguard.models.pipeline import KeyPipeline, decode_state
from distillguard.models.products import ProductEvidenceConfig

from tests.unit.models.test_products import SEVERITY, T0, event, run, worst

FRAME = ("You are a grading assistant for teachers. Grade the student answer strictly against the rubric and "
         "give a score out of 10 with a short justification.\n\nQuestion: {question}\n\nRubric: {rubric}\n\n"
         "Student answer: {answer}\n\nScore:")
SUBJECTS = [
    "photosynthesis chlorophyll sunlight glucose oxygen leaves carbon dioxide energy plants stomata",
    "french revolution bastille monarchy louis estates general napoleon republic terror paris",
    "quadratic equations roots discriminant parabola vertex factorise coefficients formula graph",
    "plate tectonics earthquakes continental drift subduction mantle crust faults volcanoes ridges",
    "supply demand equilibrium price elasticity market surplus shortage consumers producers",
    "krebs cycle mitochondria citric acid pyruvate atp nadh enzymes respiration cells",
    "newton second law force mass acceleration momentum friction inertia vectors motion",
    "cold war soviet union nuclear deterrence berlin wall cuba missiles diplomacy alliances",
]
STUDENT_WORDS = ("because therefore think means shows explains happens example reason result whole part "
                 "first second then finally answer idea important also maybe probably really").split()


def grader(batches: int, per_batch: int = 40, key: str = "grader", org: str | None = "org-school",
           answer_tokens: int = 280, seed: int = 3, first: int = 0, start=T0) -> list:
    """A school's key: each batch one question (its subject's words) and rubric, ``per_batch``
    students' answers (a few of the subject's words and their own) sent 2 s apart; an hour
    between batches."""
    rng, events, ts = random.Random(seed), [], start
    for b in range(batches):
        subject = SUBJECTS[b % len(SUBJECTS)].split()
        question = "Explain " + " ".join(subject[:6]) + f" (assignment {b})"
        rubric = "accuracy 5, use of " + " ".join(subject[6:8]) + " 3, clarity 2"
        for _ in range(per_batch):
            answer = " ".join(rng.sample(subject, 3) + rng.sample(STUDENT_WORDS, 5))
            over = {"org_id": org} if org else {}
            events.append(event(first + len(events), ts, FRAME.format(question=question, rubric=rubric, answer=answer),
                                key, usage=(120, answer_tokens), **over))
            ts += timedelta(seconds=2)
        ts += timedelta(hours=1)
    return events


def test_a_grader_on_a_mature_organisations_account_is_named_at_info_never_paged():
    events = grader(12)  # 480 requests: past its first batches, the retired questions keep the cap
    alerts = run(events)
    assert alerts, "its rubric prompts read as a judging harvest: the key is still reported"
    assert worst(alerts) == SEVERITY["info"]
    first = alerts[0]
    assert first["reasons"][0] == {"signal": "graded_batches", "value": 0, "baseline": 2, "weight": None}
    reasons = {r["signal"]: r["value"] for r in first["reasons"]}
    assert reasons["recurring_line_share"] >= 0.5 and reasons["typical_answer_tokens"] <= 600
    assert reasons["account_age_days"] >= 30
    assert not is_exculpated(first), "sent, not held: a benchmark swept in subject order looks the same"
    pipeline, state = KeyPipeline(), None
    for offset, ev in enumerate(events):
        state = pipeline.step(state, ev, offset).state
    assert GradedBatches().batches(decode_state(state), len(events)) >= 10


def test_the_same_batches_page_without_an_organisation_a_mature_account_or_on_long_answers():
    # (each of these paged the grader too before the evidence: it is what a rubric harvest sends)
    assert worst(run(grader(6, org=None))) == SEVERITY["critical"]
    young = [event(i, T0 + timedelta(seconds=2 * i), ev.prompt, "grader", account_age_days=3.0, usage=(120, 280),
                   org_id="org-school") for i, ev in enumerate(grader(6))]
    assert worst(run(young)) == SEVERITY["critical"]
    assert worst(run(grader(6, answer_tokens=1500))) == SEVERITY["critical"]


def test_one_question_for_ever_is_no_grader_it_pages_once_its_first_batches_are_over():
    # what a sweep under one long constant frame looks like: nothing retires; once its lines are
    # older than the window, or by its 400th event, it pages
    alerts = run(grader(1, per_batch=450))
    assert alerts[0]["severity"] == "info"
    paged = [a["events_seen"] for a in alerts if a["severity"] == "critical"]
    assert paged and GradedBatches().window <= min(paged) <= ProductEvidenceConfig().batch_pending_max_events


def test_a_sweep_of_distinct_items_under_one_frame_retires_nothing_and_pages():
    rng = random.Random(5)
    items = [event(i, T0 + timedelta(seconds=2 * i),
                   FRAME.format(question=" ".join(rng.sample(" ".join(SUBJECTS).split(), 8)),
                                rubric="accuracy 5, clarity 5", answer=" ".join(rng.sample(STUDENT_WORDS, 12))),
                   "sweep", usage=(120, 280), org_id="org-bought") for i in range(450)]
    pipeline, state = KeyPipeline(), None
    for offset, ev in enumerate(items):
        state = pipeline.step(state, ev, offset).state
        assert decode_state(state).batches == 0
    paged = [a["events_seen"] for a in run(items) if a["severity"] == "critical"]
    assert paged and min(paged) <= ProductEvidenceConfig().batch_pending_max_events


def test_a_grader_that_turns_to_sweeping_distinct_items_is_paged():
    batches = grader(6)
    rng = random.Random(9)
    start = T0 + timedelta(days=1)
    items = [event(len(batches) + i, start + timedelta(seconds=2 * i),
                   FRAME.format(question=" ".join(rng.sample(" ".join(SUBJECTS).split(), 8)), rubric="accuracy 10",
                                answer=" ".join(rng.sample(STUDENT_WORDS, 12))),
                   "grader", usage=(120, 280), org_id="org-school") for i in range(400)]
    alerts = run(batches + items)
    assert worst([a for a in alerts if a["events_seen"] <= len(batches)]) == SEVERITY["info"]
    paged = [a for a in alerts if a["severity"] == "critical"]
    assert paged and all(r["signal"] != "exculpatory" for r in paged[0]["reasons"])
    counter = GradedBatches()  # its last question retires, then the window runs out
    assert paged[0]["events_seen"] <= len(batches) + counter.retire_after + counter.window


def test_a_batch_is_counted_when_its_question_retires_not_on_a_stray_prompt_nor_twice_for_its_lines():
    counter, st = GradedBatches(), _State()
    n = 0

    def send(question: str, times: int) -> None:
        nonlocal n
        for _ in range(times):
            prompt = f"Grade the answer against the rubric, out of 10.\n{question}\nStudent answer: try number {n}"
            counter.learn_one(st, line_marks(prompt), n, True)
            n += 1

    a = "Question: what causes the seasons on earth?\nRubric: axial tilt named, orbit not the cause"
    send(a, 20)
    counter.learn_one(st, line_marks("An unrelated prompt of another shape entirely\nwith lines of its own"), n, True)
    n += 1
    send(a, 20)
    assert st.batches == 0, "the stray prompt retired nothing"
    send("Question: why is the sky blue?\nRubric: scattering named, wavelength dependence", 30)
    assert st.batches == 1, "question a and its rubric line retired: one batch"
    send("Question: what is a prime number?\nRubric: definition, two examples", 30)
    assert counter.batches(st, n) == 2
    send("Question: what is a prime number?\nRubric: definition, two examples", counter.window + 30)
    assert counter.batches(st, n) == 0, "nothing retired within the window: no longer batches"
