"""Routes file: validation, matching, quiet times, allowlist, secrets from the environment."""
from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.errors import ConfigError
from distillguard.sinks.routing.routes import load_routes, parse_routes, resolve_secrets


def test_first_match_wins_unless_continue(config, make_alert):
    assert config.targets_for(make_alert(severity="critical")) == ["pd", "slack", "am", "hook"]
    assert config.targets_for(make_alert(severity="warning")) == ["am", "hook"]
    cluster = make_alert("c1", entity_type="cluster", severity="warning", score=0.7, keys=["a", "b", "c"])
    assert config.targets_for(cluster) == ["og"]
    low = make_alert("c1", entity_type="cluster", severity="warning", score=0.3, keys=["a", "b"])
    assert config.targets_for(low) == ["am", "hook"]


def test_org_matching_needs_the_optional_org_field(make_alert, routes_text):
    config = parse_routes(routes_text.replace("match: {severity: [critical]}", "match: {org: [acme]}"))
    assert "pd" in config.targets_for(make_alert(org_id="acme"))
    assert "pd" not in config.targets_for(make_alert())


def test_toml_is_read_like_yaml(tmp_path, make_alert):
    path = tmp_path / "routes.toml"
    path.write_text('[targets.pd]\ntype = "pagerduty"\nrouting_key_env = "PD"\n\n'
                    '[[routes]]\ntargets = ["pd"]\n[routes.match]\nseverity = ["critical"]\n')
    config = load_routes(path)
    assert config.targets_for(make_alert(severity="critical")) == ["pd"]
    assert config.targets_for(make_alert(severity="info")) == []


@pytest.mark.parametrize("bad, message", [
    ("targets: {}\nroutes: [{targets: [nope]}]", "unknown targets"),
    ("targets: {x: {type: carrier-pigeon}}\nroutes: [{targets: [x]}]", "invalid routes file"),
    ("targets: {x: {type: pagerduty, routing_key: inline-secret}}\nroutes: [{targets: [x]}]", "invalid"),
    ("[not a mapping", "not valid YAML"),
])
def test_bad_routes_files_are_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        parse_routes(bad)


def test_suspend_is_refused_without_explicit_allow_suspend(routes_text):
    text = routes_text.replace("action: require_verification", "action: suspend")
    with pytest.raises(ConfigError, match="allow_suspend"):
        parse_routes(text)
    allowed = parse_routes(text.replace("actions:\n", "actions:\n  allow_suspend: true\n"))
    assert allowed.actions.action_for({"severity": "critical", "entity_type": "cluster", "score": 1}) == "suspend"


def test_secrets_come_from_the_environment_and_all_missing_are_named(config, secrets_env):
    secrets = resolve_secrets(config, secrets_env)
    assert secrets["pd"]["routing_key"].get_secret_value() == secrets_env["PD_KEY"]
    assert secrets_env["PD_KEY"] not in repr(secrets)  # SecretStr never prints its value
    with pytest.raises(ConfigError) as err:
        resolve_secrets(config, {"PD_KEY": "x"})
    assert "$OG_KEY" in str(err.value) and "$SLACK_URL" in str(err.value) and "$HOOK_SECRET" in str(err.value)


def test_maintenance_windows_and_snoozes_mute_only_their_scope(make_alert, routes_text):
    text = routes_text + """
maintenance:
  - {start: "2026-03-01T00:00:00Z", end: "2026-03-01T02:00:00Z", targets: [slack], match: {severity: [warning]}}
snoozes:
  - {entity: "key:noisy", until: "2026-03-05T00:00:00Z"}
"""
    config = parse_routes(text)
    inside = 1772323200000 + 3600_000  # 2026-03-01T01:00Z
    after = 1772323200000 + 3 * 3600_000
    assert config.muted(make_alert(), "slack", inside).startswith("maintenance")
    assert config.muted(make_alert(), "pd", inside) is None
    assert config.muted(make_alert(severity="critical"), "slack", inside) is None
    assert config.muted(make_alert(), "slack", after) is None
    assert config.muted(make_alert("noisy"), "pd", after).startswith("snoozed")


def test_allowlist(config, make_alert):
    assert config.allowlist.allows(make_alert("internal-eval"))
    assert config.allowlist.allows(make_alert("c", entity_type="cluster", keys=["partner-1", "partner-2"]))
    assert not config.allowlist.allows(make_alert("c", entity_type="cluster", keys=["partner-1", "stranger"]))
    assert not config.allowlist.allows(make_alert("k1"))


def test_the_example_routes_file_is_valid():
    config = load_routes(Path(__file__).parents[3] / "deploy" / "routes.example.yaml")
    assert set(config.targets) == {"oncall-pagerduty", "secops-opsgenie", "abuse-slack", "alertmanager",
                                   "gateway-webhook"}
    assert not config.actions.allow_suspend
