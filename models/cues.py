"""Elicitation and grading cues in the largest languages of LLM traffic: the tables of
``cues.toml`` (data, not code: read it for what each family holds and why), as
``multilingual`` compiles them.

English is not here: its phrase rules are in ``phrase_rules.toml`` (compiled by ``features``).
Each family maps a language (ISO 639-1) to literal wordings, matched as substrings.

>>> "zh" in REASONING and "step by step" not in REASONING.get("en", ())
True
"""
from __future__ import annotations

from .tables import load

_TABLES = load("cues.toml")


def _family(name: str) -> dict[str, tuple[str, ...]]:
    return {language: tuple(wordings) for language, wordings in _TABLES[name].items()}


# reasoning / chain-of-thought elicitation ("think step by step", "show your reasoning")
REASONING: dict[str, tuple[str, ...]] = _family("reasoning")
# grading / reward-model style ("grade this answer", "which answer is better")
GRADING: dict[str, tuple[str, ...]] = _family("grading")
# output-format demands of a benchmark item ("final answer", "answer with the letter only")
ANSWER_FORMAT: dict[str, tuple[str, ...]] = _family("answer_format")
# the label under which an item asks for its answer ("答案：", "Antwort:"), English aside
ANSWER_LABELS: tuple[str, ...] = tuple(_TABLES["labels"]["answer"])
# the labels that open an exam item ("问题：", "Frage:"), English aside
ITEM_LABELS: tuple[str, ...] = tuple(_TABLES["labels"]["item"])
# the paraphrase-tolerant reasoning-elicitation cue words of other languages: per language,
# the words of phrase_rules.toml's four [process] groups, in their order
# the paraphrase-tolerant grading words of other languages: per language, (verdict words,
# judged words), as phrase_rules.toml's [judging] has them for English
JUDGING: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    language: (tuple(verdict.split()), tuple(judged.split())) for language, (verdict, judged) in _TABLES["judging"].items()}
PROCESS: dict[str, tuple[tuple[str, ...], ...]] = {
    language: tuple(tuple(group.split()) for group in groups) for language, groups in _TABLES["process"].items()}
