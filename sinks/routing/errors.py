"""Routing errors, rooted in the project's one error class."""
from __future__ import annotations

from distillguard.errors import ConfigError
from distillguard.sinks.errors import SinkError


class RoutesError(ConfigError):
    """The routes file is invalid, or names a secret that is not set (reported at start-up)."""


class DeliveryError(SinkError):
    """A notification could not be delivered to a target (carried as data in :class:`DeliveryOutcome`)."""
