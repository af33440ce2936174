# distillguard — the two commands of the quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-integration check-clone bench bench-detection system-deps clean

setup: $(STAMP)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[embedded,test]'
	touch $(STAMP)

# Debian packages the tests need: a real Prometheus Alertmanager and headless Chromium.
system-deps:
	bash scripts/install-system-deps.sh

demo: setup
	$(VENV)/bin/distillguard demo $(ARGS)

test: setup system-deps
	bash scripts/run-tests.sh $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# The unit suite in a fresh clone of HEAD with nothing beside it (also part of `make test`).
check-clone: setup
	bash scripts/check-clone.sh

bench: setup
	$(PY) benchmarks/detection.py

clean:
	rm -rf var build dist *.egg-info .pytest_cache
