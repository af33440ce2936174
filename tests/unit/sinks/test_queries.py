"""The dashboard's read side without an engine: filter validation, bucket choice, the docs."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from distillguard.sinks.queries import PANEL_SQL, BadFilter, DashboardQueries, Filters, panel_sql

DOCS = Path(__file__).resolve().parents[3] / "docs" / "queries.md"
T0 = datetime(2026, 2, 1)


class FakeClient:
    """Answers the data-range query only; records what was asked."""

    def __init__(self, first=T0, last=T0 + timedelta(hours=5), buckets=6):
        self.first, self.last, self.buckets = first, last, buckets
        self.asked = []

    def query(self, sql, parameters=None):
        self.asked.append((sql, parameters))

        class Result:
            column_names = ("first", "last", "buckets")
            result_rows = [(self.first, self.last, self.buckets)]
        return Result()


def test_docs_show_every_dashboard_statement():
    docs = " ".join(DOCS.read_text().split())
    for name in PANEL_SQL:
        if name in ("data_range", "orgs"):
            continue
        assert " ".join(panel_sql(name, "distillguard").split()) in docs, name


def test_only_rollup_tables_can_be_filled_in():
    with pytest.raises(ValueError):
        panel_sql("top_keys", "distillguard", "events; DROP TABLE alerts")
    with pytest.raises(ValueError):
        DashboardQueries(FakeClient(), "db; DROP")


@pytest.mark.parametrize("span, step, table", [
    (timedelta(hours=1), 60, "key_minute"), (timedelta(hours=6), 300, "key_minute"),
    (timedelta(days=1), 900, "key_minute"), (timedelta(days=7), 3600, "key_hour"),
    (timedelta(days=90), 12 * 3600, "key_hour")])
def test_bucket_step_keeps_plots_under_240_points(span, step, table):
    f = Filters(t0=T0, t1=T0 + span)
    assert (f.step, f.table) == (step, table)
    assert span.total_seconds() / f.step <= 240


def test_default_window_is_the_stored_data_and_presets_end_at_its_newest_bucket():
    q = DashboardQueries(FakeClient())
    f = q.filters({})
    assert (f.t0, f.t1) == (T0, T0 + timedelta(hours=6))  # newest hour bucket + 1 h
    f = DashboardQueries(FakeClient(first=T0 - timedelta(days=30))).filters({})  # a month stored: its last day
    assert (f.t0, f.t1) == (T0 - timedelta(hours=18), T0 + timedelta(hours=6))
    f = DashboardQueries(FakeClient(first=T0 - timedelta(days=30))).filters({"range": "all"})
    assert f.t0 == T0 - timedelta(days=30) and f.table == "key_hour"
    f = DashboardQueries(FakeClient(buckets=0)).filters({})  # nothing stored yet: the last day to now
    assert f.t1 - f.t0 == timedelta(days=1)
    f = q.filters({"range": "1h"})
    assert (f.t0, f.t1) == (T0 + timedelta(hours=5), T0 + timedelta(hours=6))
    f = q.filters({"from": "2026-02-01T02:00", "to": "2026-02-01T03:30Z", "org": "acme", "key": "sk-1"})
    assert (f.t0, f.t1, f.org, f.key) == (T0 + timedelta(hours=2), T0 + timedelta(hours=3, minutes=30), "acme",
                                          "sk-1")
    assert f.params() == {"t0": f.t0, "t1": f.t1, "org": "acme", "key": "sk-1", "step": 60}


@pytest.mark.parametrize("query", [
    {"key": "x' OR 1=1 --"}, {"org": "a b"}, {"key": "k" * 201}, {"from": "yesterday"},
    {"from": "2026-02-02T00:00", "to": "2026-02-01T00:00"}, {"range": "forever"},
    {"from": "2020-01-01T00:00", "to": "2026-02-01T00:00"}])
def test_bad_filters_are_refused(query):
    with pytest.raises(BadFilter):
        DashboardQueries(FakeClient()).filters(query)


def test_user_input_reaches_clickhouse_only_as_parameters():
    client = FakeClient()
    q = DashboardQueries(client)
    f = q.filters({"key": "sk-live_1", "org": "acme"})
    q.rows("top_keys", {**f.params(), "limit": 5}, f.table)
    sql, params = client.asked[-1]
    assert "sk-live_1" not in sql and "acme" not in sql
    assert params["key"] == "sk-live_1" and params["org"] == "acme"
