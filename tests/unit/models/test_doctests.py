"""Run the numpydoc examples of every module in distillguard.models (and the pure stream helpers) as doctests."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import distillguard.models as models

MODULES = sorted(m.name for m in pkgutil.walk_packages(models.__path__, prefix="distillguard.models.")) + [
    "distillguard.streams.holes", "distillguard.streams.recovery", "distillguard.streams.epochs",
    "distillguard.streams.health", "distillguard.streams.envelope", "distillguard.streams.loop_lag",
    "distillguard.sinks.routing.alertmanager", "distillguard.sinks.routing.text",
    "distillguard.sinks.routing.delivery", "distillguard.sinks.routing.lifecycle", "distillguard.devtools.demo"]


def test_modules_found():
    assert "distillguard.models.events" in MODULES and "distillguard.models.features" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
