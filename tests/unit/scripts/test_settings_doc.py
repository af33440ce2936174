"""docs/settings.md lists every setting of every component, as the settings classes define them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "settings_table.py"


def load():
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_table_is_up_to_date():
    table = load()
    assert table.main(["--check"]) == 0, "run: python scripts/settings_table.py"


def test_every_field_of_every_settings_class_is_in_the_table():
    table = load()
    text = table.render()
    for _, cls in table.components():
        for name, field in cls.model_fields.items():
            assert f"`{table.env_names(cls, name, field)[0]}`" in text, (cls.__name__, name)
    # a secret's default is never printed
    assert "| `DG_WEB_TOKEN` | SecretStr | None | unset |" in text.replace("\\|", "|")


def test_comments_above_a_field_describe_it():
    table = load()

    class Example:
        """(source read by inspect)"""

        # The first field's comment,
        # on two lines.
        first: int = 1
        second: int = 2  # trailing
        third: int = 3

    assert table.field_comments(Example) == {"first": "The first field's comment, on two lines.",
                                             "second": "trailing", "third": ""}
