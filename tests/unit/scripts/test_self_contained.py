"""The test suite needs nothing beside the repository: a user's clone has no workspace around it.

Cheap insurance next to ``scripts/check-clone.sh`` (which runs the unit suite in a fresh clone):
the benchmark workspace beside the repository is for benchmarks only, and no test path climbs out of
the repository from its own file.
"""
from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# The workspace's folder name after "../" or "/work/", or as a path component joined with / or
# os.path.join. Assembled so that this file does not match itself.
_NAME = "sha" + "red"
WORKSPACE_PATHS = re.compile("|".join([re.escape("../" + _NAME), re.escape("/work/" + _NAME),
                                       rf"/\s*[\"']{_NAME}[\"']", rf",\s*[\"']{_NAME}[\"']\s*[,)]"]))
# Path(__file__)[.resolve()].parents[N] or .parent.parent...: how far up from the test file.
PARENTS_INDEX = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\))?((?:\.parent\b)+)")


def scanned_files() -> list[Path]:
    files = sorted((ROOT / "tests").rglob("*.py")) + [ROOT / "scripts" / "run-tests.sh", ROOT / "Makefile"]
    assert len(files) > 20
    return files


def levels_up(line: str) -> list[int]:
    """The parent index each ``Path(__file__)`` expression of ``line`` reaches (0: the file's folder)."""
    ups = [int(n) for n in PARENTS_INDEX.findall(line)]
    ups += [chain.count(".parent") - 1 for chain in PARENT_CHAIN.findall(line)]
    return ups


def test_workspace_paths_are_recognised_in_any_spelling():
    for line in ['x = ROOT.parent / "' + _NAME + '" / "contract"', "open('../" + _NAME + "/data')",
                 'os.path.join(ROOT, "..", "' + _NAME + '")']:
        assert WORKSPACE_PATHS.search(line), line
    assert not WORKSPACE_PATHS.search('rec("a1", account="acct-' + _NAME + '", pf="pf-' + _NAME + '")')


def test_levels_up_reads_both_spellings():
    assert levels_up('ROOT = Path(__file__).resolve().parents[2] / "x"') == [2]
    assert levels_up("HERE = Path(__file__).parent.parent") == [1]
    assert levels_up("x = 1") == []


def test_no_test_reads_the_benchmark_workspace():
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in scanned_files()
                 for n, line in enumerate(path.read_text().splitlines(), 1) if WORKSPACE_PATHS.search(line)]
    assert not offenders, f"tests must not read the benchmark workspace: {offenders}"


def test_no_test_climbs_out_of_the_repository():
    offenders = []
    for path in scanned_files():
        root_index = len(path.relative_to(ROOT).parts) - 1  # parents[root_index] is the repository
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(up > root_index for up in levels_up(line)):
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert not offenders, f"paths above the repository root: {offenders}"


def test_the_clone_guard_tells_the_clone_from_what_is_beside_it(monkeypatch):
    # Its own module name: in check-clone.sh the plugin is loaded as "clone_guard" too, and doctest
    # only runs the examples of functions whose module is the one it is given.
    spec = importlib.util.spec_from_file_location("clone_guard_examples", ROOT / "scripts" / "clone_guard.py")
    guard = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, guard)
    spec.loader.exec_module(guard)
    result = doctest.testmod(guard)
    assert result.attempted >= 4 and result.failed == 0


def test_the_clone_guard_fails_a_read_beside_the_checkout_and_lets_the_clone_be_read(tmp_path):
    # A subprocess: an audit hook cannot be removed once added.
    (tmp_path / "checkout").mkdir()
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "labels.csv").write_text("x\n")
    clone = tmp_path / ".clone"
    clone.mkdir()
    (clone / "ok.txt").write_text("ok\n")
    script = ("import clone_guard, sys\nclone_guard.pytest_configure(None)\n"
              "print(open(sys.argv[1]).read().strip())\nopen(sys.argv[2])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), "CLONE_GUARD_ORIGIN": str(tmp_path / "checkout"),
           "CLONE_GUARD_ALLOW": str(clone)}
    beside = tmp_path / "workspace" / "labels.csv"
    run = subprocess.run([sys.executable, "-c", script, str(clone / "ok.txt"), str(beside)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "ok"
    assert run.returncode != 0 and "ReadOutsideClone" in run.stderr and "beside the original checkout" in run.stderr
