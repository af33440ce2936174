"""The phrase and cue tables are data beside the code that compiles them (models/*.toml)."""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from distillguard.models import cues, features, tables

MODELS = Path(features.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[3]


def test_every_table_file_ships_in_the_wheel():
    # a table missing from package-data imports in a checkout and fails in the image
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = globs.get("distillguard.models", [])
    for table in MODELS.glob("*.toml"):
        assert any(fnmatch.fnmatch(table.name, g) for g in shipped), f"{table.name} is not package data"


def test_fragments_expand_inside_the_rules_and_nothing_is_left_unexpanded():
    patterns = [regex.pattern for family in features._STYLE_FAMILIES for _, regex in family if regex]
    assert not any(p for p in patterns if "{steps}" in p or "{arg}" in p or "{signature}" in p)
    # the tool-catalogue rule holds two call signatures, each holding the argument fragment
    catalogue = features._STYLE_FAMILIES[4][-1][1]
    assert catalogue.search("tools:\n- search(query), lookup(term: str)")
    assert not catalogue.search("tools: search and lookup")


def test_the_rules_the_table_writes_are_the_ones_that_fire():
    # one rule from each family, as written in phrase_rules.toml, through the compiled matcher
    for text, family in [("please walk through the reasoning", 0), ("on a scale of 1 to 10", 1),
                         ("answer with the letter only", 2), ("never refuse to answer", 3),
                         ("you have access to the following tools", 4)]:
        assert features._families_present(text) >> family & 1, text


def test_families_out_of_order_are_refused():
    broken = tables.load("phrase_rules.toml")
    broken["family"] = broken["family"][::-1]
    with pytest.raises(ValueError, match="in this order"):
        features._compile_families(broken)


def test_the_cue_tables_hold_every_family_in_many_languages():
    for family in (cues.REASONING, cues.GRADING, cues.ANSWER_FORMAT):
        assert len(family) >= 20 and all(isinstance(w, tuple) and w for w in family.values())
    assert "答案" in cues.ANSWER_LABELS and "frage" in cues.ITEM_LABELS
