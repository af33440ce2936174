"""The provisioned Grafana dashboard: every panel has a query, every ClickHouse query runs
against the migrated schema (Grafana macros substituted) and returns the demo's data, every
Prometheus query names metrics the workers export."""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink
from distillguard.streams.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = json.loads((DEPLOY / "dashboards" / "distillguard.json").read_text())
SOURCES = yaml.safe_load((DEPLOY / "provisioning" / "datasources" / "distillguard.yaml").read_text())
BASE_MS = 1_769_904_000_000  # 2026-02-01T00:00:00Z
FROM, TO = "2026-01-31 00:00:00", "2026-02-02 00:00:00"


def grafana_sql(sql: str, org: str = "", key: str = "") -> str:
    """What Grafana's ClickHouse plugin sends: macros and dashboard variables expanded."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 rf"\1 >= toDateTime('{FROM}') AND \1 <= toDateTime('{TO}')", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(toDateTime(\1), INTERVAL 60 second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime('{FROM}')").replace("$__toTime", f"toDateTime('{TO}')")
    values = {"org": org, "key": key}
    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}", lambda m: GRAFANA_FORMATS[m.group(2) or "raw"](values[m.group(1)]), sql)
    assert "$" not in sql, f"an unexpanded Grafana macro or variable in: {sql}"
    return sql


# Grafana's variable formats (public/app/features/templating/formatRegistry.ts): percentencode
# is encodeURIComponent plus !'()* (RFC 3986 unreserved characters stay); sqlstring doubles '.
GRAFANA_FORMATS = {"raw": lambda v: v, "percentencode": lambda v: quote(v, safe="-_.~"),
                   "sqlstring": lambda v: "'" + v.replace("'", "''") + "'"}


def targets(kind: str) -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in DASHBOARD["panels"] for t in p["targets"] if t["datasource"]["type"] == kind]


def test_every_panel_has_a_query_on_a_provisioned_source():
    uids = {s["uid"]: s["type"] for s in SOURCES["datasources"]}
    assert set(uids.values()) == {"grafana-clickhouse-datasource", "prometheus"}
    titles = [p["title"] for p in DASHBOARD["panels"]]
    for wanted in ("Top suspicious keys", "Top suspicious clusters", "Score over time per key",
                   "Extraction-style share", "Campaign timeline", "Alert volume", "Dead letters by reason",
                   "Consumer lag per partition"):
        assert wanted in titles
    assert len(set(p["id"] for p in DASHBOARD["panels"])) == len(titles)
    for panel in DASHBOARD["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert uids[target["datasource"]["uid"]] == target["datasource"]["type"]
            assert (target.get("rawSql") or target.get("expr") or "").strip(), panel["title"]


def test_clickhouse_panels_run_on_the_migrated_schema(client):
    settings = ClickHouseSettings(database="distillguard", batch_rows=500)
    sink = ClickHouseSink(settings, client=client)  # migrations on start-up; an empty schema first
    for title, target in targets("grafana-clickhouse-datasource"):
        client.query(grafana_sql(target["rawSql"]))  # raises on an unknown table, column or macro
    # Then with data: a suspicious key, a cluster incident and a dead letter.
    for i in range(300):
        key = "k-bad" if i % 3 == 0 else f"k{i % 7}"
        sink.add(dict(event_id=f"e{i}", ts_ms=BASE_MS + i * 20_000, api_key_id=key, account_id="a", org_id="acme",
                      model="m", endpoint="", asn=1, country="US", prompt_chars=10, input_tokens=5,
                      output_tokens=50, status=200, latency_ms=100, score=0.9 if key == "k-bad" else 0.1,
                      extraction_style=0.8 if key == "k-bad" else 0.0, topic_bucket=i % 5,
                      template_hash=i % 3, alerting=0), partition=0, offset=i, topic="t")
    for ts, severity, members in (("2026-02-01T00:30:00Z", "warning", ["k-bad", "k1"]),
                                  ("2026-02-01T01:00:00Z", "critical", ["k-bad", "k1", "k2"])):
        sink.add_alert({"alert_id": "cluster:k-bad", "ts": ts, "entity_type": "cluster", "entity_id": "k-bad",
                        "api_key_ids": members, "score": 0.9, "severity": severity,
                        "reasons": [{"signal": "cluster_keys", "value": len(members)}], "events_seen": 90})
    sink.add_dead_letter("not JSON: x", "t", 0, 999, 3, failed_at_ms=BASE_MS + 60_000)
    sink.add_exculpated({"alert_id": "key:k3:1", "ts": "2026-02-01T00:40:00Z", "entity_type": "key",
                         "entity_id": "k3", "api_key_ids": ["k3"], "score": 0.6, "severity": "info",
                         "reasons": [{"signal": "exculpatory", "value": "app_conversations"}], "events_seen": 60})
    sink.flush()
    results = {}
    for title, target in targets("grafana-clickhouse-datasource"):
        results[title] = client.query(grafana_sql(target["rawSql"])).result_rows
        assert results[title], f"{title}: no rows over the demo data"
    assert results["Top suspicious keys"][0][0] == "k-bad"
    assert results["Top suspicious clusters"][0][:3] == ("cluster:k-bad", 3, "critical")
    assert len(results["Campaign timeline"]) == 2
    assert results["Exculpated detections (recorded, not sent)"][0][:2] == ("key:k3:1", "key")
    assert results["Exculpated detections (recorded, not sent)"][0][6] == "app_conversations"
    # The variables filter: another org or an unknown key leaves the key panels empty.
    for title in ("Top suspicious keys", "Score over time per key", "Extraction-style share"):
        target = next(t for name, t in targets("grafana-clickhouse-datasource") if name == title)
        assert not client.query(grafana_sql(target["rawSql"], org="other")).result_rows
        assert client.query(grafana_sql(target["rawSql"], org="acme", key="k-bad")).result_rows
    target = next(t for name, t in targets("grafana-clickhouse-datasource") if name == "Top suspicious clusters")
    assert client.query(grafana_sql(target["rawSql"], key="k2")).result_rows
    assert not client.query(grafana_sql(target["rawSql"], key="k5")).result_rows


HOSTILE = ["\\", "x\\' OR 1=1 --", "acme' OR '1'='1", "') OR 1=1 --\\", "k-bad\\", "$$x$$", "%27", "ac\nme"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_variable_is_data_in_every_panel_whatever_it_holds(client, value):
    """A text box's value is only ever compared: quotes and backslashes (ClickHouse reads \\' as a
    quote inside a string, which sqlstring's doubling does not escape) cannot end the literal."""
    settings = ClickHouseSettings(database="distillguard", batch_rows=500)
    ClickHouseSink(settings, client=client)  # the schema (the module's other test may have filled it)
    for title, target in targets("grafana-clickhouse-datasource"):
        for org, key in ((value, ""), ("", value), (value, value)):
            if "${" not in target["rawSql"]:
                continue
            assert not client.query(grafana_sql(target["rawSql"], org=org, key=key)).result_rows, (title, value)


def test_prometheus_panels_use_exported_metrics():
    metrics = WorkerMetrics()
    exported, labels = metrics.sample_names(), set()
    for name in ("events", "duplicates", "dead_letters", "alerts", "lag", "sink_flush_seconds"):
        labels.update(getattr(metrics, name)._labelnames)
    for title, target in targets("prometheus"):
        names = set(re.findall(r"distillguard_\w+", target["expr"]))
        assert names and names <= exported, (title, names - exported)
        for by in re.findall(r"by \(([^)]*)\)", target["expr"]):
            assert {b.strip() for b in by.split(",")} <= labels | {"le"}, (title, by)
