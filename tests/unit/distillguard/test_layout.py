"""The package is a folder of the tree: every ``distillguard.X.Y`` import is a file there.

Tools that read the tree rather than the installed package (IDEs, pyright, mypy) place
``distillguard.models.events`` at ``distillguard/models/events.py``; ``distillguard/models`` etc.
are symlinks to the design card's top-level folders. These tests fail when an import names a
module that is not in the tree, when a symlink points nowhere (or out of the repository), when
the wheel would miss a package of those folders, or when the image leaves out a folder the
package needs.
"""
from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "distillguard"
NOT_SOURCE = {".git", ".venv", "var", "build", "dist", "node_modules", "__pycache__"}


def python_files() -> list[Path]:
    """The repository's Python files, each once (the package's symlinked folders are not walked
    twice: rglob does not descend into symlinks)."""
    return [path for path in ROOT.rglob("*.py")
            if not NOT_SOURCE.intersection(path.relative_to(ROOT).parts) and not path.is_symlink()]


def distillguard_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) of each absolute ``distillguard`` import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names
                      if alias.name.split(".")[0] == "distillguard"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "distillguard":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def module_file(dotted: str) -> Path | None:
    """The file of a dotted module in the tree (a module or a package's __init__), or None."""
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defined_names(path: Path) -> set[str]:
    """The names a module binds at its top level (``from module import name`` of a non-module)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_every_distillguard_import_in_the_repository_is_a_file_in_the_tree():
    unplaced = []
    for path in python_files():
        for line, module, name in distillguard_imports(path):
            if module_file(module) is None:
                unplaced.append(f"{path.relative_to(ROOT)}:{line}: {module}")
            elif name not in (None, "*") and module_file(f"{module}.{name}") is None \
                    and name not in defined_names(module_file(module)):
                unplaced.append(f"{path.relative_to(ROOT)}:{line}: {module}.{name}")
    assert not unplaced, "imports the tree cannot place:\n" + "\n".join(unplaced)


def test_the_scan_sees_the_imports_it_checks():
    # (the test above passes vacuously if the walk finds nothing)
    imports = {module for path in python_files() for _, module, _ in distillguard_imports(path)}
    assert {"distillguard.models.events", "distillguard.streams.app", "distillguard.devtools.demo_traffic"} <= imports


def linked_folders() -> dict[str, Path]:
    return {path.name: path for path in PACKAGE.iterdir() if path.is_symlink()}


def test_the_package_links_the_top_level_folders_inside_the_repository():
    links = linked_folders()
    assert set(links) == {"models", "streams", "sinks", "contracts"}
    for name, link in links.items():
        target = link.resolve()
        assert target == ROOT / name and (target / "__init__.py").is_file(), f"distillguard/{name} -> {target}"
        assert not Path(link.readlink()).is_absolute(), f"distillguard/{name} must be relative to work in any clone"


def test_the_wheel_holds_every_package_of_the_linked_folders():
    # pyproject finds the packages under distillguard/ (following the links), as `pip wheel .` does
    found = set(find_packages(str(ROOT), include=["distillguard*"]))
    expected = {"distillguard"} | {
        "distillguard." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in linked_folders() for init in (ROOT / folder).rglob("__init__.py")}
    assert expected <= found, f"missing from the wheel: {sorted(expected - found)}"


@pytest.mark.parametrize("dockerfile", ["deploy/Dockerfile"])
def test_the_image_copies_every_folder_the_package_links_to(dockerfile):
    copied = set()
    for line in (ROOT / dockerfile).read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _destination = shlex.split(line[len("COPY "):])
            copied.update(source.rstrip("/") for source in sources)
    assert "distillguard" in copied
    missing = {name for name in linked_folders() if name not in copied}
    assert not missing, f"{dockerfile} does not COPY {sorted(missing)}: the links in distillguard/ would dangle"
