"""The dashboard's pages without an engine: what the plots carry, escaping of stored names."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from distillguard.dashboard.charts import line_chart
from distillguard.dashboard.pages import render_dashboard, render_incident
from distillguard.sinks.queries import DashboardQueries

T0 = datetime(2026, 2, 1)
EVIL = '<script>alert(1)</script>"\'&'


class FakeQueries(DashboardQueries):
    """Panel rows as ClickHouse would return them; a key id written by an attacker."""

    def __init__(self, empty: bool = False) -> None:
        super().__init__(client=None)
        self.empty = empty

    def data_range(self):
        return T0, T0 + timedelta(hours=6)

    def orgs(self):
        return ["acme", EVIL]

    def rows(self, name, params, table="key_minute"):
        if self.empty:
            return []
        t = [T0 + timedelta(minutes=5 * i) for i in range(4)]
        return {
            "top_keys": [{"api_key_id": EVIL, "account_id": "a", "org_id": "acme", "events": 10, "max_score": 0.9,
                          "avg_score": 0.5, "extraction_share": 0.7, "topics": 3, "incidents": 1,
                          "worst_severity_rank": 3}],
            "top_clusters": [{"incident_id": f"cluster:{EVIL}", "entity_id": EVIL, "members": 4,
                              "severity": "critical", "score": 0.9, "events_seen": 40, "opened_at": t[0],
                              "updated_at": t[3], "updates": 2}],
            "score_over_time": [{"api_key_id": EVIL, "t": x, "max_score": 0.2 * i, "events": 3}
                                for i, x in enumerate(t)],
            "extraction_share": [{"t": x, "events": 5 + i, "extraction_share": 0.1, "avg_score": 0.2}
                                 for i, x in enumerate(t)],
            "campaign_timeline": [{"alert_id": f"key:{EVIL}:1", "entity_type": "key", "entity_id": EVIL, "ts": x,
                                   "severity": "warning", "severity_rank": 2, "score": 0.7, "members": 1,
                                   "version": i} for i, x in enumerate(t[:2])],
            "alert_volume": [{"t": t[0], "severity": "warning", "alerts": 2}, {"t": t[0], "severity": "critical",
                                                                               "alerts": 1}],
            "exculpated": [{"alert_id": f"key:{EVIL}:1", "entity_type": "key", "entity_id": EVIL, "keys": 1,
                            "score": 0.55, "events_seen": 80, "evidence": EVIL, "updated_at": t[2]}],
            "dlq": [{"reason_class": EVIL, "records": 3, "last_seen": t[0]}],
            "incident": [{"incident_id": f"key:{EVIL}:1", "entity_type": "key", "entity_id": EVIL,
                          "api_key_ids": [EVIL], "severity": "warning", "score": 0.7,
                          "reasons": '[{"signal": "' + EVIL.replace('"', '') + '", "value": 1}]', "events_seen": 60,
                          "detector": "d", "opened_at": t[0], "updated_at": t[1], "updates": 2}],
            "incident_versions": [{"version": 1, "ts": t[0], "severity": "warning", "score": 0.7, "events_seen": 60,
                                   "members": 1, "reasons": "[]"}],
            "incident_members": [{"api_key_id": EVIL, "t": x, "max_score": 0.5, "events": 2,
                                  "extraction_share": 0.5} for x in t],
            "incident_member_evidence": [
                {"api_key_id": EVIL, "events": 1, "first_seen": t[0], "last_seen": t[0], "median_gap_s": None,
                 "gaps_under_a_minute": None, "mean_output_tokens": 300, "topics": 1, "extraction_share": 0.0,
                 "max_score": 0.2}],
        }[name]


def plots(page: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r'data-panel="(\w+)" data-points="(\d+)"', page)}


def test_every_panel_is_a_plot_with_its_point_count():
    page = render_dashboard(FakeQueries(), {})
    assert plots(page) == {"top_keys": 1, "top_clusters": 1, "score_over_time": 4, "extraction_share": 8,
                           "request_volume": 4, "campaign_timeline": 2, "alert_volume": 2, "dlq": 1}
    assert page.count('class="pt"') == 4 + 8 + 4 + 2


def test_stored_names_are_escaped_everywhere():
    for page in (render_dashboard(FakeQueries(), {}), render_incident(FakeQueries(), "key:x:1")):
        assert "<script" not in page and "alert(1)" in page  # shown as text, never as markup
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert hrefs and not [h for h in hrefs if set(h) & set("<>'")]  # links stay inside their attribute


def test_empty_range_says_so():
    page = render_dashboard(FakeQueries(empty=True), {})
    assert set(plots(page).values()) == {0}
    assert page.count("no data in this range") == len(plots(page))
    assert render_incident(FakeQueries(empty=True), "key:none:1") is None


def test_line_chart_maps_time_and_value_into_the_frame():
    svg = line_chart("p", {"s": [(T0, 0.0), (T0 + timedelta(hours=1), 1.0)]}, T0, T0 + timedelta(hours=1), top=1.0)
    xs = [float(x) for x in re.findall(r'<circle class="pt" cx="([\d.]+)"', svg)]
    ys = [float(y) for y in re.findall(r'<circle class="pt" cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert xs[0] < xs[1] and ys[0] > ys[1]  # later is right, higher is up


def test_exculpated_detections_are_listed_with_their_evidence():
    section = re.search(r'<section class="panel" id="exculpated">(.*?)</section>',
                        render_dashboard(FakeQueries(), {}), re.S).group(1)
    assert "<table" in section and "key:" in section and "80" in section
    empty = re.search(r'<section class="panel" id="exculpated">(.*?)</section>',
                      render_dashboard(FakeQueries(empty=True), {}), re.S).group(1)
    assert "none in this range" in empty and "<table" not in empty


class CohortQueries(FakeQueries):
    """A content cohort of three named keys: one quiet at a person's pace, one sweeping, and one
    with no event stored in the incident's window."""

    def rows(self, name, params, table="key_minute"):
        if name == "incident":
            return [{"incident_id": "cluster:cohort-latin-free-form-1", "entity_type": "cluster",
                     "entity_id": "cohort-latin-free-form-1", "api_key_ids": ["sweeper", "casual", "expired"],
                     "severity": "critical", "score": 0.9, "reasons": '[{"signal": "content_cohort", "value": "x"}]',
                     "events_seen": 300, "detector": "d", "opened_at": T0, "updated_at": T0 + timedelta(hours=1),
                     "updates": 3}]
        if name == "incident_member_evidence":
            self.asked_keys = params["keys"]
            return [{"api_key_id": "casual", "events": 2, "first_seen": T0, "last_seen": T0 + timedelta(hours=3),
                     "median_gap_s": 10800.0, "gaps_under_a_minute": 0.0, "mean_output_tokens": 310, "topics": 2,
                     "extraction_share": 0.0, "max_score": 0.1},
                    {"api_key_id": "sweeper", "events": 40, "first_seen": T0, "last_seen": T0 + timedelta(hours=1),
                     "median_gap_s": 8.5, "gaps_under_a_minute": 0.97, "mean_output_tokens": 900, "topics": 31,
                     "extraction_share": 0.0, "max_score": 0.8}]
        return super().rows(name, params, table)


def test_incident_page_shows_each_members_evidence_quietest_first():
    queries = CohortQueries()
    page = render_incident(queries, "cluster:cohort-latin-free-form-1")
    assert queries.asked_keys == ["sweeper", "casual", "expired"]  # every member, not the plot's first 20
    section = page[page.index('id="incident_member_evidence"'):]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    cells = [re.findall(r"<td[^>]*>(?:<a [^>]*>)?(.*?)(?:</a>)?</td>", row) for row in rows[1:]]
    assert [c[0] for c in cells] == ["expired", "casual", "sweeper"]
    assert cells[0][1] == "0" and cells[1][1:4] == ["2", "10800.000", "0.000"] and cells[2][2] == "8.500"
    assert "None" not in section and "nan" not in section
