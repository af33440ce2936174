"""The routes file: targets, routes, lifecycle, delivery, quiet times and enforcement policy.

YAML (``.yaml``/``.yml``) or TOML (``.toml``), validated by pydantic at start-up so a bad
file stops the router before it reads a record. Secrets are never in the file: a target
names the environment variable that holds its key, token or URL (``routing_key_env``,
``api_key_env``, ``webhook_url_env``, ``secret_env``), and :func:`resolve_secrets` reads
them into :class:`~pydantic.SecretStr` values, so they are never printed or logged.

Matching is Alertmanager-like: routes are tried in order, the first that matches wins,
unless it sets ``continue: true`` (then later routes are tried too).
"""
from __future__ import annotations

import os
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from .errors import RoutesError

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
Severity = Literal["info", "warning", "critical"]
EntityType = Literal["key", "account", "cluster"]
ActionName = Literal["throttle", "perturb_outputs", "require_verification", "suspend"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """Conditions on an alert; an empty list or ``None`` matches anything."""

    severity: list[Severity] = Field(default_factory=list)
    entity_type: list[EntityType] = Field(default_factory=list)
    # Alert v1 has no org; alerts that carry an optional ``org_id`` field can be routed on it.
    org: list[str] = Field(default_factory=list)
    min_score: float | None = None
    min_severity: Severity | None = None

    def matches(self, alert: dict) -> bool:
        if self.severity and alert.get("severity") not in self.severity:
            return False
        if self.min_severity and SEVERITY_RANK.get(alert.get("severity"), 0) < SEVERITY_RANK[self.min_severity]:
            return False
        if self.entity_type and alert.get("entity_type") not in self.entity_type:
            return False
        if self.org and alert.get("org_id") not in self.org:
            return False
        if self.min_score is not None and float(alert.get("score", 0.0)) < self.min_score:
            return False
        return True


class RateLimit(_Model):
    """Token bucket: ``per_minute`` sustained, ``burst`` at once."""

    per_minute: float = Field(gt=0)
    burst: int = Field(1, ge=1)


class _Target(_Model):
    rate_limit: RateLimit | None = None
    # Per-target override of the delivery timeout (seconds).
    timeout_s: float | None = Field(None, gt=0)


class PagerDutyTarget(_Target):
    type: Literal["pagerduty"]
    routing_key_env: str
    url: str = "https://events.pagerduty.com/v2/enqueue"


class OpsgenieTarget(_Target):
    type: Literal["opsgenie"]
    api_key_env: str
    url: str = "https://api.opsgenie.com"
    responders: list[dict] = Field(default_factory=list)


class SlackTarget(_Target):
    type: Literal["slack"]
    webhook_url_env: str  # the incoming-webhook URL is itself the credential
    # New incidents opened within this many seconds of the first waiting one are posted as
    # one message (a hydra campaign or a burst of keys is one post, not twenty); 0 = each alone.
    group_wait_s: float = Field(0.0, ge=0)
    group_max: int = Field(10, ge=1, le=15)  # incidents per grouped message (Slack allows 50 blocks)


class AlertmanagerTarget(_Target):
    type: Literal["alertmanager"]
    url: str


class WebhookTarget(_Target):
    type: Literal["webhook"]
    url: str | None = None
    url_env: str | None = None
    secret_env: str

    @model_validator(mode="after")
    def _one_url(self) -> "WebhookTarget":
        if bool(self.url) == bool(self.url_env):
            raise ValueError("a webhook target needs exactly one of url or url_env")
        return self


TargetConfig = Annotated[Union[PagerDutyTarget, OpsgenieTarget, SlackTarget, AlertmanagerTarget, WebhookTarget],
                         Field(discriminator="type")]


class Route(_Model):
    name: str = ""
    match: Match = Field(default_factory=Match)
    targets: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")


class Delivery(_Model):
    """Retries: ``max_attempts`` tries in all, exponential backoff with jitter between them."""

    timeout_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    jitter: float = Field(0.5, ge=0, le=1)  # share of each delay that is randomised


class Lifecycle(_Model):
    auto_resolve_after_s: float = Field(24 * 3600.0, gt=0)  # quiet this long -> resolved
    escalate_score_delta: float = Field(0.15, gt=0)  # score rise that re-notifies
    cluster_growth: float = Field(1.5, gt=1)  # member count ratio that re-notifies
    resolved_ttl_s: float = Field(7 * 86400.0, gt=0)  # resolved incidents kept this long
    false_positive_ttl_s: float = Field(30 * 86400.0, gt=0)  # a false positive mutes its entity this long
    tick_s: float = Field(5.0, gt=0)  # how often quiet incidents and deferred deliveries are checked


class Window(_Model):
    """A maintenance window: no notifications to ``targets`` (all if empty) for matching alerts."""

    start: datetime
    end: datetime
    match: Match = Field(default_factory=Match)
    targets: list[str] = Field(default_factory=list)
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("maintenance start/end need a timezone (e.g. 2026-01-01T00:00:00Z)")
        if self.end <= self.start:
            raise ValueError("maintenance end must be after start")
        return self


class Snooze(_Model):
    """No notifications for one entity (``key:ID``, ``account:ID``, ``cluster:ID``) until ``until``."""

    entity: str
    until: datetime
    reason: str = ""


class Allowlist(_Model):
    """Entities never routed nor acted on (internal evaluation keys, partners under contract)."""

    entities: list[str] = Field(default_factory=list)  # "key:ID", "cluster:ID", "account:ID"
    api_key_ids: list[str] = Field(default_factory=list)  # an alert all of whose keys are listed
    orgs: list[str] = Field(default_factory=list)

    def allows(self, alert: dict) -> bool:
        if f"{alert.get('entity_type')}:{alert.get('entity_id')}" in self.entities:
            return True
        if alert.get("org_id") and alert.get("org_id") in self.orgs:
            return True
        keys = alert.get("api_key_ids") or []
        return bool(keys) and bool(self.api_key_ids) and set(keys) <= set(self.api_key_ids)


class ActionRule(_Model):
    match: Match = Field(default_factory=Match)
    action: ActionName


class ActionPolicy(_Model):
    """Recommended enforcement per incident; ``suspend`` only with an explicit ``allow_suspend: true``."""

    allow_suspend: bool = False
    rules: list[ActionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _suspend_is_explicit(self) -> "ActionPolicy":
        if not self.allow_suspend and any(rule.action == "suspend" for rule in self.rules):
            raise ValueError("an action rule recommends 'suspend' but allow_suspend is not set to true; "
                             "automatic suspension must be enabled explicitly")
        return self

    def action_for(self, alert: dict) -> str | None:
        """The first matching rule's action, or None."""
        for rule in self.rules:
            if rule.match.matches(alert):
                return rule.action
        return None


class RoutesConfig(_Model):
    dashboard_url: str = "http://127.0.0.1:3000"  # Grafana; links go to its distillguard dashboard
    targets: dict[str, TargetConfig]
    routes: list[Route] = Field(min_length=1)
    delivery: Delivery = Field(default_factory=Delivery)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    maintenance: list[Window] = Field(default_factory=list)
    snoozes: list[Snooze] = Field(default_factory=list)
    allowlist: Allowlist = Field(default_factory=Allowlist)
    actions: ActionPolicy = Field(default_factory=ActionPolicy)

    @model_validator(mode="after")
    def _targets_exist(self) -> "RoutesConfig":
        for route in self.routes:
            unknown = [t for t in route.targets if t not in self.targets]
            if unknown:
                raise ValueError(f"route {route.name or route.targets} names unknown targets {unknown}")
        for window in self.maintenance:
            unknown = [t for t in window.targets if t not in self.targets]
            if unknown:
                raise ValueError(f"maintenance window names unknown targets {unknown}")
        return self

    def targets_for(self, alert: dict) -> list[str]:
        """Target names for an alert, in route order, without repeats."""
        chosen: list[str] = []
        for route in self.routes:
            if route.match.matches(alert):
                chosen.extend(t for t in route.targets if t not in chosen)
                if not route.continue_:
                    break
        return chosen

    def muted(self, alert: dict, target: str, now_ms: int) -> str | None:
        """Why notifications for ``alert`` to ``target`` are held now (maintenance or snooze), or None."""
        now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
        entity = f"{alert.get('entity_type')}:{alert.get('entity_id')}"
        for snooze in self.snoozes:
            if snooze.entity == entity and now < snooze.until:
                return f"snoozed until {snooze.until.isoformat()}"
        for window in self.maintenance:
            if window.start <= now < window.end and (not window.targets or target in window.targets) \
                    and window.match.matches(alert):
                return f"maintenance until {window.end.isoformat()}"
        return None


def parse_routes(text: str, fmt: Literal["yaml", "toml"] = "yaml") -> RoutesConfig:
    """Validate a routes document; raises :class:`RoutesError` with every problem found."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise RoutesError(f"routes file is not valid {fmt.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise RoutesError("routes file must be a mapping with 'targets' and 'routes'")
    try:
        return RoutesConfig.model_validate(data)
    except ValidationError as exc:
        raise RoutesError(f"invalid routes file: {exc}") from None


def load_routes(path: Path | str) -> RoutesConfig:
    """Read a routes file; the format is chosen by its suffix (``.toml``, else YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError(f"cannot read routes file {path}: {exc.strerror}") from None
    return parse_routes(text, "toml" if path.suffix == ".toml" else "yaml")


def secret_env_names(target: TargetConfig) -> dict[str, str]:
    """The target's secret fields -> the env var names that hold them."""
    names = {}
    for field in ("routing_key_env", "api_key_env", "webhook_url_env", "secret_env", "url_env"):
        value = getattr(target, field, None)
        if value:
            names[field.removesuffix("_env")] = value
    return names


def resolve_secrets(config: RoutesConfig, environ: dict[str, str] | None = None) -> dict[str, dict[str, SecretStr]]:
    """Target name -> secret name -> value, read from the environment; all missing names in one error."""
    environ = os.environ if environ is None else environ
    secrets: dict[str, dict[str, SecretStr]] = {}
    missing = []
    for name, target in config.targets.items():
        secrets[name] = {}
        for field, env_name in secret_env_names(target).items():
            value = environ.get(env_name)
            if not value:
                missing.append(f"{name}.{field} (${env_name})")
            else:
                secrets[name][field] = SecretStr(value)
    if missing:
        raise RoutesError(f"secrets not set in the environment: {', '.join(missing)}")
    return secrets
