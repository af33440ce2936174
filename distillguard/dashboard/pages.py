"""The dashboard's HTML pages: the overview (:func:`render_dashboard`), an incident
(:func:`render_incident`) and the panels as JSON (:func:`panels_json`).

Every query is one of the fixed statements in :mod:`distillguard.sinks.queries`; filters are
validated and passed as ClickHouse query parameters. Values are HTML-escaped (``_e``): key ids
and reasons are client-controlled.
"""
from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime
from urllib.parse import quote

from distillguard.sinks.queries import RANGES, DashboardQueries, Filters

from .charts import (PALETTE, RANK_NAMES, SEVERITY_COLOURS, _e, bar_chart, line_chart, stacked_bars,
                     timeline_chart)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1f2a38;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
form.filters{display:flex;gap:8px;flex-wrap:wrap;align-items:end;padding:10px 18px;background:#fff;
 border-bottom:1px solid #ddd}
form.filters label{font-size:12px;color:#555;display:flex;flex-direction:column;gap:2px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:14px;padding:14px 18px}
section.panel{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px;overflow:auto}
section.panel h2{font-size:15px;margin:0 0 6px}
p.note{font-size:12px;color:#666;margin:2px 0 6px}
table{border-collapse:collapse;font-size:12px;width:100%;margin-top:6px}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;white-space:nowrap}
th{color:#555;font-weight:600}
.sev-critical{color:#d03030;font-weight:600}.sev-warning{color:#b07800;font-weight:600}.sev-info{color:#2f80c0}
.legend span{display:inline-block;margin-right:10px;font-size:11px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.error{background:#fff0f0;border:1px solid #e0b0b0;padding:12px 18px;margin:14px 18px}
"""


def _page(title: str, body: str, filters_html: str = "", root: str = "./") -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><meta name=\"viewport\" content=\"width=device-width\">"
            f"<style>{STYLE}</style></head><body><header><a href=\"{root}\">distillguard</a>"
            f"<span>{_e(title)}</span></header>{filters_html}{body}</body></html>")


def _legend(names: list[str], colours: dict[str, str]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{colours[n]}"></i>{_e(n)}</span>'
                                             for n in names) + "</div>"


def _table(rows: list[dict], columns: list[str], links: dict[str, callable] | None = None) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            if isinstance(value, float):
                value = f"{value:.3f}"
            elif isinstance(value, datetime):
                value = value.strftime("%Y-%m-%d %H:%M:%S")
            text = _e(value)
            css = f' class="sev-{_e(value)}"' if c in ("severity", "worst") and value else ""
            if links and c in links:
                text = f'<a href="{_e(links[c](row))}">{text}</a>'
            cells.append(f"<td{css}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _filter_form(f: Filters, orgs: list[str], root: str = "./") -> str:
    org_options = ['<option value="">all orgs</option>'] + [
        f'<option value="{_e(o)}"{" selected" if o == f.org else ""}>{_e(o or "(none)")}</option>'
        for o in orgs if o]
    ranges = ['<option value="">custom / default</option>'] + [
        f'<option value="{r}"{" selected" if r == f.range_name else ""}>last {r} of data</option>'
        for r in [*RANGES, "all"]]
    return (f'<form class="filters" method="get" action="{root}">'
            f'<label>org<select name="org">{"".join(org_options)}</select></label>'
            f'<label>API key<input name="key" value="{_e(f.key)}" placeholder="any key" size="22"></label>'
            f'<label>from (UTC)<input type="datetime-local" name="from" value="{f.t0:%Y-%m-%dT%H:%M}"></label>'
            f'<label>to (UTC)<input type="datetime-local" name="to" value="{f.t1:%Y-%m-%dT%H:%M}"></label>'
            f'<label>range<select name="range">{"".join(ranges)}</select></label>'
            f'<button type="submit">apply</button> <a href="{root}" style="font-size:12px">reset</a>'
            f'<span style="font-size:12px;color:#666">bucket {f.step // 60} min · {f.table}</span></form>')


def _section(panel: str, title: str, note: str, content: str) -> str:
    return (f'<section class="panel" id="{panel}"><h2>{_e(title)}</h2><p class="note">{_e(note)}</p>'
            f'{content}</section>')


def render_dashboard(q: DashboardQueries, query: dict) -> str:
    """The dashboard page, served at ``<base>/`` (links are relative: it mounts under any prefix)."""
    f = q.filters(query)
    link_key = lambda row: "./?" + f.query_string(key=row["api_key_id"])  # noqa: E731
    link_incident = lambda row: "./incident/" + quote(row.get("incident_id") or row["alert_id"], safe="")  # noqa: E731
    sections = []

    keys = q.top_keys(f)
    bars = [(r["api_key_id"], float(r["max_score"]),
             SEVERITY_COLOURS.get(RANK_NAMES.get(r["incidents"] and r["worst_severity_rank"], ""), "#7a8a9a"),
             link_key(r)) for r in keys]
    for r in keys:
        r["worst"] = RANK_NAMES.get(r["worst_severity_rank"], "") if r["incidents"] else ""
    sections.append(_section("top_keys", "Top suspicious keys", "highest detector score in the range; colour = "
                             "worst incident severity (grey: none)",
                             bar_chart("top_keys", bars, top=1.0) + _table(
                                 keys, ["api_key_id", "org_id", "events", "max_score", "extraction_share", "topics",
                                        "incidents", "worst"], {"api_key_id": link_key})))

    clusters = q.top_clusters(f)
    bars = [(r["entity_id"], float(r["members"]), SEVERITY_COLOURS.get(r["severity"], "#666"), link_incident(r))
            for r in clusters]
    sections.append(_section("top_clusters", "Top suspicious clusters", "cluster incidents by severity and member "
                             "keys", bar_chart("top_clusters", bars, fmt="{:.0f} keys") + _table(
                                 clusters, ["incident_id", "members", "severity", "score", "opened_at",
                                            "updated_at"], {"incident_id": link_incident})))

    series: dict[str, list] = defaultdict(list)
    for r in q.score_over_time(f):
        series[r["api_key_id"]].append((r["t"], float(r["max_score"])))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    sections.append(_section("score_over_time", "Score over time per key",
                             "max detector score per bucket; the selected key, else the top keys",
                             line_chart("score_over_time", dict(series), f.t0, f.t1, top=1.0, label="score",
                                        colours=colours) + _legend(list(series), colours)))

    share = q.extraction_share(f)
    sections.append(_section("extraction_share", "Extraction-style share",
                             "mean extraction-style of requests per bucket (0–1), and the average key score",
                             line_chart("extraction_share",
                                        {"extraction-style share": [(r["t"], float(r["extraction_share"])) for r in share],
                                         "avg score": [(r["t"], float(r["avg_score"])) for r in share]},
                                        f.t0, f.t1, top=1.0, label="share",
                                        colours={"extraction-style share": "#d03030", "avg score": "#2f80c0"})
                             + _legend(["extraction-style share", "avg score"],
                                       {"extraction-style share": "#d03030", "avg score": "#2f80c0"})))

    volume = line_chart("request_volume", {"requests": [(r["t"], float(r["events"])) for r in share]},
                        f.t0, f.t1, label="requests", colours={"requests": "#2a9d5c"})
    sections.append(_section("request_volume", "Request volume", "requests per bucket (filtered)", volume))

    versions = q.campaign_timeline(f)
    by_incident: dict[str, dict] = {}
    for r in versions:
        inc = by_incident.setdefault(r["alert_id"], {"alert_id": r["alert_id"], "entity_type": r["entity_type"],
                                                     "entity_id": r["entity_id"], "points": []})
        inc["points"].append((r["ts"], r["severity"], float(r["score"])))
    sections.append(_section("campaign_timeline", "Campaign timeline",
                             "incidents over time: a dot per alert version (open, escalation, growth), colour = severity",
                             timeline_chart("campaign_timeline", list(by_incident.values()), f.t0, f.t1)
                             + _legend(list(SEVERITY_COLOURS), SEVERITY_COLOURS)))

    buckets: dict[datetime, dict[str, int]] = defaultdict(dict)
    for r in q.alert_volume(f):
        buckets[r["t"]][r["severity"]] = int(r["alerts"])
    sections.append(_section("alert_volume", "Alert volume", "alerts sent per bucket (each version), by severity",
                             stacked_bars("alert_volume", dict(buckets), f.t0, f.t1, f.step)
                             + _legend(list(SEVERITY_COLOURS), SEVERITY_COLOURS)))

    held = q.exculpated(f)
    sections.append(_section("exculpated", "Exculpated detections",
                             "incidents held at info on a real product's or one mature account's evidence: "
                             "recorded, not sent as alerts (latest version of each)",
                             _table(held, ["alert_id", "entity_type", "keys", "score", "events_seen", "evidence",
                                           "updated_at"]) or "<p>none in this range</p>"))

    dlq = q.dlq()
    bars = [(r["reason_class"], float(r["records"]), "#8a4fbf", "") for r in dlq]
    sections.append(_section("dlq", "Dead letters", "records dead-lettered in the last 7 days (wall clock), by reason",
                             bar_chart("dlq", bars, fmt="{:.0f}") + _table(dlq, ["reason_class", "records",
                                                                                 "last_seen"])))

    body = "<main>" + "".join(sections) + "</main>"
    return _page("dashboard", body, _filter_form(f, q.orgs()))


MEMBER_COLUMNS = ["api_key_id", "events", "median_gap_s", "gaps_under_a_minute", "mean_output_tokens", "topics",
                  "extraction_share", "max_score", "first_seen", "last_seen"]


def _member_rows(api_key_ids: list[str], evidence: list[dict]) -> list[dict]:
    """The member table of the keys asked for: those with no event stored in the window first
    (expired, or sent before it), then the query's rows, quietest first; a measure a single
    event has none of is blank."""
    stored = {row["api_key_id"] for row in evidence}
    missing = [{"api_key_id": key, "events": 0} for key in api_key_ids if key not in stored]
    return missing + [{name: "" if value is None else value for name, value in row.items()} for row in evidence]


def render_incident(q: DashboardQueries, incident_id: str) -> str | None:
    found = q.incident(incident_id)
    if found is None:
        return None
    inc, versions, members, window = found["incident"], found["versions"], found["members"], found["window"]
    summary = _table([{**inc, "members": len(inc["api_key_ids"])}],
                     ["incident_id", "entity_type", "entity_id", "severity", "score", "members", "events_seen",
                      "detector", "opened_at", "updated_at", "updates"])
    reasons = _table(inc["reasons"], ["signal", "value", "baseline", "weight"])
    timeline = line_chart("incident_timeline", {"score": [(v["ts"], float(v["score"])) for v in versions]},
                          window.t0, window.t1, top=1.0, label="score", colours={"score": "#d03030"})
    version_rows = [{**v, "why": "; ".join(f"{r.get('signal')}={r.get('value')}" for r in v["reasons"][:4])}
                    for v in versions]
    series: dict[str, list] = defaultdict(list)
    for r in members:
        series[r["api_key_id"]].append((r["t"], float(r["max_score"])))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    member_link = lambda row: "../?" + Filters(t0=window.t0, t1=window.t1).query_string(key=row["api_key_id"])  # noqa: E731
    member_rows = _member_rows(found["member_keys"], found["member_evidence"])
    body = ("<main>"
            + _section("incident", "Incident", "the latest version of this incident", summary)
            + _section("reasons", "Reasons", "the signals behind the latest score (value vs baseline)",
                       reasons or "<p>no reasons recorded</p>")
            + _section("incident_timeline", "Timeline", "every version of the alert: opened, escalated, grown",
                       timeline + _table(version_rows, ["ts", "severity", "score", "events_seen", "members", "why"]))
            + _section("incident_members", "Member keys over time",
                       "max score per bucket of the member keys (first 20), two hours either side",
                       line_chart("incident_members", dict(series), window.t0, window.t1, top=1.0, label="score",
                                  colours=colours) + _legend(list(series), colours))
            + _section("incident_member_evidence", "Each member's evidence",
                       "every member key over the same window, quietest first: a content cohort names members by "
                       "content fit, so look at the ones with few requests at a person's pace (long median gap, "
                       "few gaps under a minute) before acting on every key",
                       _table(member_rows, MEMBER_COLUMNS, {"api_key_id": member_link}))
            + "</main>")
    return _page(f"incident {incident_id}", body, root="../")


def panels_json(q: DashboardQueries, query: dict) -> dict:
    f = q.filters(query)
    return {"filters": {"from": f.t0.isoformat(), "to": f.t1.isoformat(), "org": f.org, "key": f.key,
                        "step_s": f.step, "table": f.table},
            "top_keys": q.top_keys(f), "top_clusters": q.top_clusters(f), "score_over_time": q.score_over_time(f),
            "extraction_share": q.extraction_share(f), "campaign_timeline": q.campaign_timeline(f),
            "alert_volume": q.alert_volume(f), "exculpated": q.exculpated(f), "dlq": q.dlq()}
