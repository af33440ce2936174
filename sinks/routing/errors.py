"""Routing errors, rooted in the project's one error class."""
from __future__ import annotations

from distillguard.errors import ConfigError


class RoutesError(ConfigError):
    """The routes file or the Alertmanager settings are invalid (reported at start-up)."""
