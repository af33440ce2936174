"""The base of every component's settings: pydantic-settings, read from ``DG_*`` variables.

A value that fails validation raises :class:`~distillguard.errors.SettingsError` (a
``ConfigError``) naming the variable and the field, so every configuration error a process
reports at start has one type and says where to look, like a bad overrides or routes file.
"""
from __future__ import annotations

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from .errors import SettingsError


def env_names(cls: type[BaseSettings], name: str) -> list[str]:
    """The environment variables a field of ``cls`` is read from, the preferred one first."""
    field = cls.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{cls.model_config.get('env_prefix', '')}{name}".upper()]


def describe_invalid(cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line per problem: ``DG_X (field x): why``; the input value is left out on purpose
    (a password, a token)."""
    problems = []
    # A field read from named variables is reported under the variable's name: back to the field.
    field_of = {env: name for name in cls.model_fields for env in env_names(cls, name)}
    for error in exc.errors(include_input=False, include_url=False):
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else ""
        name = name if name in cls.model_fields else field_of.get(name, name)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if name in cls.model_fields:
            problems.append(f"{env_names(cls, name)[0]} (field {name}): {message}")
        elif name:
            problems.append(f"{name}: {message}")
        else:
            problems.append(message)
    return f"{cls.__name__} from the environment: " + "; ".join(problems)


class DistillguardSettings(BaseSettings):
    """Base of the settings classes: validation errors become :class:`SettingsError`."""

    def __init__(self, *args, **values) -> None:
        try:
            super().__init__(*args, **values)
        except ValidationError as exc:
            raise SettingsError(describe_invalid(type(self), exc)) from None
