"""Page links and Grafana's access: links open the provisioned dashboard by its uid with only
variables it defines; its panels take text boxes as data; it reads with a read-only user."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from distillguard.sinks.dashboard_links import incident_link
from distillguard.sinks.routing import lifecycle
from distillguard.sinks.routing.routes import Lifecycle, RoutesConfig
from distillguard.sinks.routing.text import dashboard_link

ROOT = Path(__file__).resolve().parents[2].parent
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "distillguard.json").read_text())
VARIABLES = {v["name"] for v in DASHBOARD["templating"]["list"]}


def _incident(entity_type: str, entity_id: str, keys: list[str], **extra) -> dict:
    alert = {"schema": "distill.alert.v1", "alert_id": f"{entity_type}:{entity_id}:1", "ts": "2026-02-01T10:00:00Z",
             "entity_type": entity_type, "entity_id": entity_id, "api_key_ids": keys, "score": 0.9,
             "severity": "critical", "events_seen": 40, "detector": "test/1", "reasons": [], **extra}
    return lifecycle.on_alert(None, alert, now_ms=1, partition=0, lifecycle=Lifecycle()).state


@pytest.mark.parametrize("dashboard_url", [RoutesConfig.model_fields["dashboard_url"].default,
                                           "https://grafana.example/", "https://grafana.example/d/distillguard",
                                           "https://example.com/grafana"])
@pytest.mark.parametrize("entity", [("key", "k1", ["k1"]), ("cluster", "c7", ["k2", "k3"]),
                                    ("account", "acct-9", ["k4"])])
def test_page_links_open_the_dashboard_by_its_uid_with_its_own_variables(dashboard_url, entity):
    link = urlsplit(dashboard_link(dashboard_url, _incident(*entity)))
    assert link.path.endswith(f"/d/{DASHBOARD['uid']}")
    assert link.netloc == urlsplit(dashboard_url).netloc and link.path.startswith(urlsplit(dashboard_url).path
                                                                                  .split("/d/")[0].rstrip("/"))
    query = parse_qs(link.query)
    variables = {name[4:] for name in query if name.startswith("var-")}
    assert variables and variables <= VARIABLES, variables - VARIABLES
    assert query["var-key"] == [entity[2][0]]  # the key, or an account's / cluster's first member
    assert int(query["from"][0]) < 1_769_940_000_000 < int(query["to"][0])  # around the alert


def test_the_org_is_passed_when_the_incident_has_one():
    link = incident_link("http://g:3000", entity_type="key", entity_id="k1", api_key_ids=["k1"], org_id="a&b")
    assert parse_qs(urlsplit(link).query)["var-org"] == ["a&b"] and "org" in VARIABLES


def test_panels_take_text_boxes_as_data_not_sql():
    """Each use of a variable is decodeURLComponent('${name:percentencode}'): percentencode
    leaves only [A-Za-z0-9-_.~%], so no quote or backslash reaches ClickHouse's parser (a
    sqlstring-quoted backslash would escape the closing quote)."""
    uses = 0
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            sql = target.get("rawSql") or ""
            for name in VARIABLES:
                every = re.findall(rf"\$\{{{name}(?::\w+)?\}}|\${name}\b|\[\[{name}", sql)
                safe = re.findall(rf"decodeURLComponent\('\$\{{{name}:percentencode\}}'\)", sql)
                assert len(every) == len(safe), (panel["title"], name)
                uses += len(safe)
    assert uses


def test_grafana_reads_clickhouse_as_a_read_only_user():
    sources = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "distillguard.yaml")
                             .read_text())
    (clickhouse,) = [s for s in sources["datasources"] if s["type"] == "grafana-clickhouse-datasource"]
    users = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "grafana-readonly.xml").getroot()
    user = users.find(f"users/{clickhouse['jsonData']['username']}")
    assert user is not None
    profile = users.find(f"profiles/{user.findtext('profile')}")
    assert int(profile.findtext("readonly")) >= 1
    assert [q.text for q in user.findall("grants/query")] == ["GRANT SELECT ON distillguard.*"]
    password_env = user.find("password").get("from_env")
    assert clickhouse["secureJsonData"]["password"] == f"${password_env}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert clickhouse["jsonData"]["username"] != compose["clickhouse"]["environment"]["CLICKHOUSE_USER"]
    assert password_env in compose["clickhouse"]["environment"] and password_env in compose["grafana"]["environment"]
    mounts = [v.split(":") for v in compose["clickhouse"]["volumes"]]
    assert any(source == "./deploy/clickhouse/users.d/grafana-readonly.xml"
               and target.startswith("/etc/clickhouse-server/users.d/") for source, target, *_ in mounts)
