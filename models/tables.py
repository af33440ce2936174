"""The detector's word and phrase tables, read from the TOML files beside this module.

The tables are data (``phrase_rules.toml``: the English phrase rules, cue words and stop
words that ``features`` compiles; ``cues.toml``: the other languages' cues that
``multilingual`` compiles, and their cue words that ``features`` adds to the English ones), so that a reviewer reads or extends them without reading the
code that compiles them, and a wheel ships them as package data. Read once, at import.

>>> sorted(load("cues.toml"))
['answer_format', 'grading', 'judging', 'labels', 'process', 'reasoning']
"""
from __future__ import annotations

import tomllib
from importlib import resources


def load(name: str) -> dict:
    """One table file of this package, parsed (a missing or malformed file fails the import:
    a detector without its tables must not start)."""
    return tomllib.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def words(text: str) -> tuple[str, ...]:
    """A whitespace-separated word list as the tables write long ones.

    >>> words("rate grade\\n score")
    ('rate', 'grade', 'score')
    """
    return tuple(text.split())
