"""Every ``DG_*`` variable is a field of a settings class: no code reads one from the
environment by itself (it would miss docs/settings.md, validation and the ConfigError story)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# os.environ.get("DG_X"), os.environ["DG_X"], os.getenv("DG_X"), environ.setdefault("DG_X", ...)
DIRECT_READ = re.compile(r"""(?:environ(?:\.get|\.setdefault|\.pop)?\s*[\(\[]|getenv\s*\()\s*f?["'](DG_\w*)""")
# Tests set variables for the processes they start; that is not a read.
NOT_CODE = {"tests", ".git", ".venv", "var", "build", "dist", "__pycache__"}


def direct_reads() -> list[str]:
    found = []
    for path in ROOT.rglob("*.py"):
        if NOT_CODE.intersection(path.relative_to(ROOT).parts):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found += [f"{path.relative_to(ROOT)}:{number}: {name}" for name in DIRECT_READ.findall(line)]
    return found


def test_no_code_reads_a_DG_variable_outside_the_settings_classes():
    assert not direct_reads(), "read these through a settings field:\n" + "\n".join(direct_reads())


def test_the_pattern_finds_the_reads_it_forbids():
    lines = ['os.environ.get("DG_ACTOR")', "os.environ['DG_X']", 'os.getenv("DG_Y", "")', 'environ.pop("DG_Z")']
    assert [DIRECT_READ.findall(line) for line in lines] == [["DG_ACTOR"], ["DG_X"], ["DG_Y"], ["DG_Z"]]
    assert not DIRECT_READ.findall('env = {**os.environ, "DG_WEB_TOKEN": token}')  # passing one on is not reading
