"""pytest plugin for scripts/check-clone.sh: a test that opens a file outside the clone fails.

A relative ``../shared`` already fails in a clone with nothing beside it; this also catches
absolute paths into the checkout the clone was made from (or a stale editable install of it)
and into the folders beside that checkout (a workspace a user does not have). Folders named
``.*`` beside it (``~/.cache`` when the checkout sits in a home directory) stay readable.

Settings (environment, set by check-clone.sh): ``CLONE_GUARD_ORIGIN`` the original checkout;
``CLONE_GUARD_ALLOW`` os.pathsep-separated folders that may be read anyway (the clone's
temporary folder, the dependencies' site-packages).
"""
from __future__ import annotations

import os
import sys


class ReadOutsideClone(PermissionError):
    """A test opened a file that a user's fresh clone would not have beside it."""


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def forbidden_reason(path: str, origin: str, allowed: list[str]) -> str | None:
    """Why opening ``path`` (absolute, resolved) is outside the clone, or None when it is fine.

    >>> forbidden_reason("/w/repo/core/x.py", "/w/repo", ["/w/repo/.venv", "/tmp/c"])
    'inside the original checkout /w/repo'
    >>> forbidden_reason("/w/shared/contract/a.json", "/w/repo", [])
    'beside the original checkout /w/repo'
    >>> forbidden_reason("/w/repo/.venv/lib/site.py", "/w/repo", ["/w/repo/.venv"]) is None
    True
    >>> forbidden_reason("/w/.cache/pip/x", "/w/repo", []) is None
    True
    """
    if any(_under(path, folder) for folder in allowed):
        return None
    if _under(path, origin):
        return f"inside the original checkout {origin}"
    parent = os.path.dirname(origin)
    if parent != os.sep and _under(path, parent):
        beside = os.path.relpath(path, parent).split(os.sep)[0]
        if not beside.startswith("."):
            return f"beside the original checkout {origin}"
    return None


def pytest_configure(config) -> None:
    origin = os.path.realpath(os.environ["CLONE_GUARD_ORIGIN"])
    allowed = [os.path.realpath(p) for p in os.environ.get("CLONE_GUARD_ALLOW", "").split(os.pathsep) if p]

    def on_open(event: str, args: tuple) -> None:
        if event != "open" or isinstance(args[0], int) or args[0] is None:
            return
        path = os.path.realpath(os.fsdecode(args[0]))
        reason = forbidden_reason(path, origin, allowed)
        if reason:
            raise ReadOutsideClone(f"{path} is {reason}: a fresh clone has nothing there")

    sys.addaudithook(on_open)
