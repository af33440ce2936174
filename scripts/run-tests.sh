#!/usr/bin/env bash
# Run the whole suite. pytest exits 5 when it collected no test: that is a failure here.
# Without arguments the unit suite also runs in a fresh clone of HEAD with nothing beside it
# (scripts/check-clone.sh); when the work tree is HEAD exactly it runs only there, not twice.
# Without arguments the suite runs on TEST_WORKERS pytest processes (pytest-xdist, default 2,
# one test file per process at a time) beside the fresh-clone unit run, except the tests marked `serial`
# (tests/integration/conftest.py), which run alone afterwards: they assert that a worker makes
# progress within a deadline and must not share the CPU with another test.
# With arguments: exactly `pytest ARGS`, on one process.
set -uo pipefail
cd "$(dirname "$0")/.."

run_pytest() {
  .venv/bin/python -m pytest -q --durations=20 "$@"
  local code=$?
  if [ "$code" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    return 1
  fi
  return "$code"
}

if [ "$#" -gt 0 ]; then
  run_pytest "$@"
  exit $?
fi

# The fresh-clone unit run goes alongside the parallel part (neither has deadlines to keep);
# its output is shown when it ends; the serial part waits for both.
in_place=()
clone_pid=
clone_log=$(mktemp "${TMPDIR:-/tmp}/check-clone.XXXXXX")
trap 'rm -f "$clone_log"' EXIT
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  bash scripts/check-clone.sh > "$clone_log" 2>&1 &
  clone_pid=$!
  [ -z "$(git status --porcelain)" ] && in_place=(--ignore=tests/unit)
else
  echo "not a git checkout: the fresh-clone check of the unit suite is skipped" >&2
fi
workers=${TEST_WORKERS:-2}
run_pytest "${in_place[@]}" -m "not serial" -n "$workers" --dist loadfile
parallel=$?
clone=0
if [ -n "$clone_pid" ]; then
  wait "$clone_pid"
  clone=$?
  echo "--- unit suite in a fresh clone (scripts/check-clone.sh): exit $clone"
  cat "$clone_log"
fi
run_pytest "${in_place[@]}" -m serial
serial=$?
[ "$clone" -eq 0 ] && [ "$parallel" -eq 0 ] && [ "$serial" -eq 0 ]
