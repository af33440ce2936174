"""The routes file: what the router decides itself — incident lifecycle, allowlist, enforcement policy.

YAML (``.yaml``/``.yml``) or TOML (``.toml``), validated by pydantic at start-up so a bad
file stops the router before it reads a record. Who is paged, how (PagerDuty, Slack,
Opsgenie, webhooks), grouping, inhibition, quiet hours and snoozes are Alertmanager's
(``deploy/alertmanager/alertmanager.yml``); a routes file that still names ``targets`` or
``routes`` is refused, so a stale file is not silently half-applied.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distillguard.contracts.alert import Severity

from .errors import RoutesError

EntityType = Literal["key", "account", "cluster"]
# How a cluster incident's members were joined: ``linked`` by what they share (payment method,
# account, network, opening or closing frame in lockstep: hydras, payment rings), or as a
# ``content_cohort``, by nothing but what they ask (reason ``content_cohort``).
ClusterKind = Literal["linked", "content_cohort"]
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
    # Cluster incidents of these kinds only (``cluster_kind``); key and account incidents match no
    # kind. A content cohort names its members by how well their prompts fit the wave's, so a
    # few ordinary keys can be among them (docs/measurements.md, "Known gaps"): a policy can give
    # it a softer action than a cluster whose members share a payment method or a network.
    cluster_kind: list[ClusterKind] = Field(default_factory=list)

    def matches(self, alert: dict) -> bool:
        if self.severity and alert.get("severity") not in self.severity:
            return False
        if self.min_severity and Severity.rank_of(alert.get("severity")) < self.min_severity.rank:
            return False
        if self.entity_type and alert.get("entity_type") not in self.entity_type:
            return False
        if self.org and alert.get("org_id") not in self.org:
            return False
        if self.min_score is not None and float(alert.get("score", 0.0)) < self.min_score:
            return False
        # (an incident's state carries the kind it recorded from the whole alert: read it first)
        if self.cluster_kind and (alert.get("cluster_kind") or cluster_kind(alert)) not in self.cluster_kind:
            return False
        return True


def cluster_kind(alert: dict) -> ClusterKind | None:
    """How a cluster incident's members were joined (``ClusterKind``); None for a key or an
    account incident. (An incident's state records it from each whole alert as ``cluster_kind``,
    which a rule reads first: the state keeps only the first few reasons.)

    >>> cluster_kind({"entity_type": "cluster", "reasons": [{"signal": "content_cohort", "value": "latin-options"}]})
    'content_cohort'
    >>> cluster_kind({"entity_type": "cluster", "reasons": [{"signal": "linked_by", "value": "shared IP prefix x3"}]})
    'linked'
    >>> cluster_kind({"entity_type": "key", "reasons": []}) is None
    True
    """
    if alert.get("entity_type") != "cluster":
        return None
    reasons = alert.get("reasons") or ()
    return "content_cohort" if any(reason.get("signal") == "content_cohort" for reason in reasons) else "linked"


class Lifecycle(_Model):
    auto_resolve_after_s: float = Field(24 * 3600.0, gt=0)  # quiet this long -> resolved
    escalate_score_delta: float = Field(0.15, gt=0)  # score rise that re-notifies
    cluster_growth: float = Field(1.5, gt=1)  # member count ratio that re-notifies
    resolved_ttl_s: float = Field(7 * 86400.0, gt=0)  # resolved incidents kept this long
    false_positive_ttl_s: float = Field(30 * 86400.0, gt=0)  # a false positive mutes its entity this long
    tick_s: float = Field(5.0, gt=0)  # how often incidents are re-posted to Alertmanager and checked


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
    """What the router decides itself; who is paged, how and when is Alertmanager's configuration."""

    dashboard_url: str = "http://127.0.0.1:3000"  # Grafana; links go to its distillguard dashboard
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    allowlist: Allowlist = Field(default_factory=Allowlist)
    actions: ActionPolicy = Field(default_factory=ActionPolicy)


def parse_routes(text: str, fmt: Literal["yaml", "toml"] = "yaml", *, path: Path | str | None = None) -> RoutesConfig:
    """Validate a routes document; raises :class:`RoutesError` naming the file (``path``, when
    read from one) and every bad field with why."""
    name = f"routes file {path}" if path is not None else "routes file"
    try:
        data = tomllib.loads(text) if fmt == "toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise RoutesError(f"{name} is not valid {fmt.upper()}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RoutesError(f"{name} must be a mapping (lifecycle, allowlist, actions)")
    try:
        return RoutesConfig.model_validate(data)
    except ValidationError as exc:
        raise RoutesError(f"invalid {name}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    """``field.path: why`` for each problem (no input values, no documentation links)."""
    return "; ".join(f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: "
                     f"{str(error['msg']).removeprefix('Value error, ')}"
                     for error in exc.errors(include_input=False, include_url=False))


def load_routes(path: Path | str) -> RoutesConfig:
    """Read a routes file; the format is chosen by its suffix (``.toml``, else YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError(f"cannot read routes file {path}: {exc.strerror}") from None
    return parse_routes(text, "toml" if path.suffix == ".toml" else "yaml", path=path)
