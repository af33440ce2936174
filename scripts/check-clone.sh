#!/usr/bin/env bash
# Run the unit suite in a fresh `git clone` of HEAD, in a temporary folder with nothing beside it,
# as a user who cloned the repository would: a test that reads ../shared (or anything else
# outside the clone, see scripts/clone_guard.py) fails here even when it passes in a workspace.
# Fast: the clone gets a throwaway venv that reuses .venv's installed dependencies (a .pth line)
# and installs only the clone itself, editable and without dependencies.
# Only committed files are in the clone: uncommitted changes are not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
origin=$(pwd -P)
venv_python="$origin/.venv/bin/python"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/distillguard-clone.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "check-clone: uncommitted changes are not in the clone (checking HEAD $(git rev-parse --short HEAD))" >&2
fi
git clone --quiet --no-checkout "$origin" "$tmp/repo"
git -C "$tmp/repo" checkout --quiet --detach "$(git rev-parse HEAD)"  # this checkout's HEAD, any branch
"$venv_python" -m venv --without-pip "$tmp/venv"
deps=$("$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$deps" > "$site/distillguard-deps.pth"  # a path line only: .venv's own editable install stays off
if ! "$tmp/venv/bin/python" -m pip install --quiet --no-deps -e "$tmp/repo" > "$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  exit 1
fi

mkdir "$tmp/tmp"
cd "$tmp/repo"
TMPDIR="$tmp/tmp" PYTHONPATH="$tmp/repo/scripts" CLONE_GUARD_ORIGIN="$origin" \
  CLONE_GUARD_ALLOW="$tmp:$deps" \
  "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider -p clone_guard -n "${TEST_WORKERS:-2}" tests/unit
