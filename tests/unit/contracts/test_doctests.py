"""The examples in every contract module's docstrings run (they show how a record is made and read)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import distillguard.contracts as contracts

MODULES = sorted(m.name for m in pkgutil.iter_modules(contracts.__path__, prefix="distillguard.contracts."))


def test_modules_found():
    assert {"distillguard.contracts.alert", "distillguard.contracts.feedback", "distillguard.contracts.action"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES + ["distillguard.sinks.routing.actions"])
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
