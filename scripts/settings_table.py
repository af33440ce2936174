"""Every ``DG_*`` setting of every component, as one Markdown table (``docs/settings.md``).

The settings classes are the source of truth: names, types and defaults come from pydantic,
the description from the comment above each field (the project documents settings there).

    python scripts/settings_table.py            # rewrite docs/settings.md
    python scripts/settings_table.py --check    # exit 1 when docs/settings.md is out of date
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "settings.md"
FIELD_LINE = re.compile(r"^    (\w+)\s*:")


def components() -> list[tuple[str, type]]:
    """(component, settings class), in the order a deployment meets them."""
    from distillguard.dashboard.server import DashboardSettings
    from distillguard.feedback import FeedbackCommandSettings
    from distillguard.sinks.clickhouse import ClickHouseSettings
    from distillguard.streams.router import RouterSettings
    from distillguard.streams.packer import PackerSettings
    from distillguard.streams.settings import KafkaSettings, WorkerSettings

    return [("Kafka (worker, router, feedback commands)", KafkaSettings), ("worker", WorkerSettings),
            ("packer (`distillguard packer`)", PackerSettings),
            ("ClickHouse sink (worker, router, dashboard)", ClickHouseSettings),
            ("alert router", RouterSettings), ("dashboard", DashboardSettings),
            ("feedback commands (ack, resolve, false-positive, snooze, unsnooze)", FeedbackCommandSettings)]


def own_fields(cls: type) -> dict:
    """The fields ``cls`` declares itself: inherited ones (KafkaSettings') are listed once,
    under the class that declares them."""
    own = vars(cls).get("__annotations__", {})
    return {name: field for name, field in cls.model_fields.items() if name in own}


def field_comments(cls: type) -> dict[str, str]:
    """The comment block right above each field of ``cls`` (and trailing ``# ...`` comments)."""
    comments: dict[str, str] = {}
    block: list[str] = []
    for line in textwrap.dedent(inspect.getsource(cls)).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        match = FIELD_LINE.match(line)
        if match:
            trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            comments[match.group(1)] = " ".join(block + ([trailing] if trailing else []))
        block = []
    return comments


def env_names(cls: type, name: str, field) -> list[str]:
    from distillguard.settings import env_names as names_of

    return names_of(cls, name)


def type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
    return re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1], text)


def default_of(field) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(secret)"
    if value is None:
        return "unset"
    return f"`{value}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = ["# Settings", "",
             "Every setting of every component, read from the environment (`DG_*`). Generated from the",
             "settings classes by `python scripts/settings_table.py`; a unit test fails when this file is",
             "out of date. Secrets (`SecretStr`) never appear in logs or responses.", ""]
    for component, cls in components():
        lines += [f"## {component} (`{cls.__module__}.{cls.__name__}`)", "",
                  "| variable | type | default | what it does |", "|---|---|---|---|"]
        comments = field_comments(cls)
        for name, field in own_fields(cls).items():
            names = env_names(cls, name, field)
            shown = f"`{names[0]}`" + (f" (also {', '.join(f'`{n}`' for n in names[1:])})" if names[1:] else "")
            lines.append(f"| {shown} | {cell(type_name(field.annotation))} | {cell(default_of(field))} | "
                         f"{cell(comments.get(name, '') or (field.description or ''))} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/settings.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run python scripts/settings_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
