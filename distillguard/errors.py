"""The project's exception tree: every error distillguard raises on purpose derives from one root."""


class DistillguardError(Exception):
    """Root of distillguard's own errors."""


class ConfigError(DistillguardError):
    """Settings that cannot work together (reported at start-up, never mid-stream)."""


class OverridesError(ConfigError):
    """A detector overrides file that cannot be read or applied: its path and the bad field."""


class SettingsError(ConfigError, ValueError):
    """``DG_*`` settings that fail validation: each bad variable named, with its field and why
    (never its value, which may be a secret). A ``ValueError`` too, as pydantic's was."""
