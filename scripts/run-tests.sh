#!/usr/bin/env bash
# Run the whole suite. pytest exits 5 when it collected no test: that is a failure here.
# Without arguments the unit suite also runs in a fresh clone of HEAD with nothing beside it
# (scripts/check-clone.sh); when the work tree is HEAD exactly it runs only there, not twice.
set -uo pipefail
cd "$(dirname "$0")/.."
in_place=()
if [ "$#" -eq 0 ]; then
  if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    bash scripts/check-clone.sh || exit 1
    [ -z "$(git status --porcelain)" ] && in_place=(--ignore=tests/unit)
  else
    echo "not a git checkout: the fresh-clone check of the unit suite is skipped" >&2
  fi
fi
.venv/bin/python -m pytest -q --durations=20 "${in_place[@]}" "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$code"
