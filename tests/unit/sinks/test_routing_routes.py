"""Routes file: validation, the action policy's matching, allowlist; routing itself is Alertmanager's."""
from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.errors import ConfigError
from distillguard.sinks.routing.routes import load_routes, parse_routes


def test_action_rules_match_severity_entity_org_and_score(config, make_alert):
    assert config.actions.action_for(make_alert("c1", entity_type="cluster", severity="critical")) == \
        "require_verification"
    assert config.actions.action_for(make_alert(severity="critical")) == "perturb_outputs"
    assert config.actions.action_for(make_alert(severity="info")) == "throttle"
    from distillguard.sinks.routing.routes import Match
    assert Match(org=["acme"], min_score=0.5).matches(make_alert(org_id="acme", score=0.6))
    assert not Match(org=["acme"]).matches(make_alert())
    assert not Match(min_score=0.5).matches(make_alert(score=0.4))


def test_toml_is_read_like_yaml(tmp_path):
    path = tmp_path / "routes.toml"
    path.write_text('[lifecycle]\ntick_s = 2\n\n[[actions.rules]]\naction = "throttle"\n[actions.rules.match]\n'
                    'severity = ["warning"]\n')
    config = load_routes(path)
    assert config.lifecycle.tick_s == 2
    assert config.actions.action_for({"severity": "warning"}) == "throttle"
    assert config.actions.action_for({"severity": "critical"}) is None


@pytest.mark.parametrize("bad, message", [
    # Receivers and routes are Alertmanager's now: a routes file that still has them is refused.
    ("targets: {pd: {type: pagerduty, routing_key_env: PD}}\nroutes: [{targets: [pd]}]", "invalid routes file"),
    ("maintenance: [{start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}]", "invalid routes file"),
    ("lifecycle: {tick_s: 0}", "invalid routes file"),
    ("actions: {rules: [{action: ban}]}", "invalid routes file"),
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


def test_allowlist(config, make_alert):
    assert config.allowlist.allows(make_alert("internal-eval"))
    assert config.allowlist.allows(make_alert("c", entity_type="cluster", keys=["partner-1", "partner-2"]))
    assert not config.allowlist.allows(make_alert("c", entity_type="cluster", keys=["partner-1", "stranger"]))
    assert not config.allowlist.allows(make_alert("k1"))


def test_the_example_routes_file_is_valid():
    config = load_routes(Path(__file__).parents[3] / "deploy" / "routes.example.yaml")
    assert config.actions.rules and config.allowlist.entities
    assert not config.actions.allow_suspend


def test_a_bad_routes_file_is_named_with_the_bad_field(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("lifecycle: {tick_s: 0}\n")
    with pytest.raises(ConfigError) as raised:
        load_routes(path)
    assert str(path) in str(raised.value) and "lifecycle.tick_s" in str(raised.value)


def _cohort(make_alert, severity="critical"):
    alert = make_alert("cohort-latin-free-form-20260201", entity_type="cluster", severity=severity,
                       keys=[f"k{i}" for i in range(12)])
    alert["reasons"] = [{"signal": "content_cohort", "value": "latin-free-form", "baseline": None, "weight": None},
                        {"signal": "cohort_members", "value": 12, "baseline": None, "weight": None}]
    return alert


def test_rules_tell_a_content_cohort_from_a_linked_cluster(make_alert):
    """A content cohort names members by content fit alone (a few ordinary keys can be among
    them): ``cluster_kind`` lets a policy act on it more softly than on a linked hydra."""
    from distillguard.sinks.routing.routes import Match
    cohort, hydra = _cohort(make_alert), make_alert("c7", entity_type="cluster", severity="critical",
                                                    linked_by="shared IP prefix x4")
    key, account = make_alert(severity="critical"), make_alert("a1", entity_type="account", severity="critical")
    assert Match(cluster_kind=["content_cohort"]).matches(cohort)
    assert not Match(cluster_kind=["content_cohort"]).matches(hydra)
    assert Match(cluster_kind=["linked"]).matches(hydra) and not Match(cluster_kind=["linked"]).matches(cohort)
    assert not any(Match(cluster_kind=["linked", "content_cohort"]).matches(a) for a in (key, account))
    assert all(Match().matches(a) for a in (cohort, hydra, key, account))


def test_the_example_policy_verifies_linked_clusters_and_perturbs_cohorts(make_alert):
    config = load_routes(Path(__file__).parents[3] / "deploy" / "routes.example.yaml")
    hydra = make_alert("c7", entity_type="cluster", severity="critical")
    assert config.actions.action_for(hydra) == "require_verification"
    assert config.actions.action_for(make_alert("a1", entity_type="account", severity="critical")) == \
        "require_verification"
    assert config.actions.action_for(_cohort(make_alert)) == "perturb_outputs"
    assert config.actions.action_for(_cohort(make_alert, "warning")) == "throttle"
    assert config.actions.action_for(make_alert(severity="critical")) == "perturb_outputs"


def test_an_unknown_cluster_kind_is_a_config_error(routes_text):
    with pytest.raises(ConfigError, match="cluster_kind"):
        parse_routes(routes_text.replace("entity_type: [cluster]}", "entity_type: [cluster], cluster_kind: [hydra]}"))


def test_the_router_recommends_by_cluster_kind_through_an_incidents_state(make_alert):
    """What the router acts on is the incident's state, which keeps only the first few reasons:
    the kind is recorded from the whole alert, so a cohort whose ``content_cohort`` reason came
    late in the list is still one; a state from before the kind was recorded falls back to its
    kept reasons."""
    from distillguard.sinks.routing import actions, lifecycle
    from distillguard.sinks.routing.routes import Lifecycle
    config = load_routes(Path(__file__).parents[3] / "deploy" / "routes.example.yaml")
    cohort = _cohort(make_alert)
    cohort["reasons"] = [{"signal": f"filler_{i}", "value": i, "baseline": None, "weight": None}
                         for i in range(lifecycle.MAX_REASONS)] + cohort["reasons"]
    hydra = make_alert("20260201T0500Z", entity_type="cluster", severity="critical")

    def recommended(alert):
        state = lifecycle.on_alert(None, alert, now_ms=1, partition=0, lifecycle=Lifecycle()).state
        return state, actions.next_action(state, config.actions, 2).action

    state, action = recommended(cohort)
    assert "content_cohort" not in [r["signal"] for r in state["reasons"]] and action == "perturb_outputs"
    assert recommended(hydra)[1] == "require_verification"
    old_state, _ = recommended(_cohort(make_alert))
    del old_state["cluster_kind"]
    assert actions.next_action(old_state, config.actions, 2).action == "perturb_outputs"
