"""``distillguard dashboard``: a built-in, read-only web dashboard over ClickHouse.

Works on the embedded chDB default (no Grafana needed) and on a ClickHouse server: the
client comes from the sink's :func:`~distillguard.sinks.clickhouse.make_client`, so the same
``DG_DATA_DIR`` / ``DG_CLICKHOUSE_URL`` settings choose the backend. chDB allows one process
per data directory: run the dashboard on a directory no worker holds (after ``make demo``:
``distillguard dashboard --data-dir var/demo``), or use the worker's own ``/dashboard/``
pages (:func:`mount_on_faust`), served by the process that owns the directory.

Plots are SVG drawn on the server (no JavaScript, no CDN): each ``<svg class="plot">``
carries ``data-panel`` and ``data-points`` (how many data points it draws). Every query is
one of the fixed statements in :mod:`distillguard.sinks.queries`; filters are validated and
passed as ClickHouse query parameters.
"""
from __future__ import annotations

import asyncio
import html
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from distillguard.contracts.alert import Severity
from distillguard.sinks.queries import RANGES, BadFilter, DashboardQueries, Filters

from ..settings import DistillguardSettings

log = logging.getLogger(__name__)

SEVERITY_COLOURS = dict(zip((s.value for s in Severity), ("#2f80c0", "#e0a020", "#d03030")))  # info, warning, critical
PALETTE = ("#2f80c0", "#d03030", "#2a9d5c", "#8a4fbf", "#e0a020", "#17a2b8", "#c05080", "#6c757d")
RANK_NAMES = {0: "", **{s.rank: s.value for s in Severity}}  # 0: no incident


class DashboardSettings(DistillguardSettings):
    """Where the dashboard listens (env prefix ``DG_DASHBOARD_``); loopback by default.

    Beyond loopback it needs a token (``DG_DASHBOARD_TOKEN``, or the workers' ``DG_WEB_TOKEN``)
    and refuses to start without one; browsers send it as the password of the Basic prompt."""

    model_config = SettingsConfigDict(env_prefix="DG_DASHBOARD_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)
    token: SecretStr | None = Field(None, validation_alias=AliasChoices("DG_DASHBOARD_TOKEN", "DG_WEB_TOKEN"))


# ---------------------------------------------------------------------------------------
# SVG plots
# ---------------------------------------------------------------------------------------
W, H = 560, 230
ML, MR, MT, MB = 48, 12, 12, 34


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _x(t: datetime, t0: datetime, t1: datetime, left: int = ML) -> float:
    span = (t1 - t0).total_seconds() or 1.0
    return left + (W - left - MR) * max(0.0, min(1.0, (t - t0).total_seconds() / span))


def _y(v: float, top: float) -> float:
    top = top or 1.0
    return H - MB - (H - MT - MB) * max(0.0, min(1.0, v / top))


def _time_axis(t0: datetime, t1: datetime, height: int = H, left: int = ML) -> str:
    span = (t1 - t0).total_seconds()
    fmt = "%H:%M" if span <= 2 * 86400 else "%m-%d"
    parts = [f'<line class="axis" x1="{left}" y1="{height - MB}" x2="{W - MR}" y2="{height - MB}" stroke="#999"/>']
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        x = _x(t, t0, t1, left)
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{height - MB + 16}" font-size="11" text-anchor="{anchor}" '
                     f'fill="#555">{t.strftime(fmt)}</text>')
    parts.append(f'<text x="{W - MR}" y="{height - 3}" font-size="10" text-anchor="end" fill="#888">'
                 f'{t0.strftime("%Y-%m-%d %H:%M")} – {t1.strftime("%Y-%m-%d %H:%M")} UTC</text>')
    return "".join(parts)


def _value_axis(top: float, label: str) -> str:
    parts = [f'<line class="axis" x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" stroke="#999"/>']
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        y = _y(v, top)
        text = f"{v:.2f}" if top <= 10 else f"{v:,.0f}"
        parts.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{ML - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{text}</text>')
    parts.append(f'<text x="4" y="{MT + 2}" font-size="10" fill="#888" transform="rotate(90 4 {MT + 2})">'
                 f'{_e(label)}</text>')
    return "".join(parts)


def _svg(panel: str, points: int, body: str, height: int = H) -> str:
    empty = "" if points else (f'<text class="empty" x="{W / 2}" y="{height / 2}" text-anchor="middle" '
                               f'fill="#999" font-size="13">no data in this range</text>')
    return (f'<svg class="plot" data-panel="{panel}" data-points="{points}" viewBox="0 0 {W} {height}" '
            f'width="{W}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">'
            f'<rect x="0" y="0" width="{W}" height="{height}" fill="#fff"/>{body}{empty}</svg>')


def line_chart(panel: str, series: dict[str, list[tuple[datetime, float]]], t0: datetime, t1: datetime, *,
               top: float | None = None, label: str = "", colours: dict[str, str] | None = None) -> str:
    """Lines over time, one per series, a dot per data point."""
    values = [v for pts in series.values() for _, v in pts]
    top = top or (max(values) * 1.1 if values and max(values) > 0 else 1.0)
    body = [_value_axis(top, label), _time_axis(t0, t1)]
    count = 0
    for i, (name, pts) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        coords = [(_x(t, t0, t1), _y(v, top)) for t, v in pts]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(f'<polyline class="series" data-series="{_e(name)}" points="{path}" fill="none" '
                        f'stroke="{colour}" stroke-width="2"/>')
        for (x, y), (t, v) in zip(coords, pts):
            body.append(f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}" data-value="{v}">'
                        f'<title>{_e(name)} {t:%Y-%m-%d %H:%M}: {v}</title></circle>')
            count += 1
    return _svg(panel, count, "".join(body))


def bar_chart(panel: str, items: list[tuple[str, float, str, str]], *, top: float | None = None,
              fmt: str = "{:.3f}") -> str:
    """Horizontal bars: (label, value, colour, link)."""
    height = max(60, 24 * len(items) + 16)
    top = top or (max((v for _, v, _, _ in items), default=0) or 1.0)
    body = []
    left, right = 190, W - 60
    for i, (name, value, colour, href) in enumerate(items):
        y = 8 + 24 * i
        width = max(1.5, (right - left) * min(1.0, value / top))
        label = _e(name if len(name) <= 28 else name[:27] + "…")
        text = f'<text x="{left - 6}" y="{y + 14}" font-size="12" text-anchor="end" fill="#222">{label}</text>'
        if href:
            text = f'<a href="{_e(href)}">{text}</a>'
        body.append(f'{text}<rect class="bar" x="{left}" y="{y}" width="{width:.1f}" height="18" fill="{colour}" '
                    f'data-value="{value}"><title>{_e(name)}: {value}</title></rect>'
                    f'<text x="{left + width + 4:.1f}" y="{y + 14}" font-size="11" fill="#555">'
                    f'{_e(fmt.format(value))}</text>')
    return _svg(panel, len(items), "".join(body), height)


def stacked_bars(panel: str, buckets: dict[datetime, dict[str, int]], t0: datetime, t1: datetime, step: int) -> str:
    """Vertical bars over time, stacked by severity."""
    totals = [sum(v.values()) for v in buckets.values()]
    top = max(totals, default=0) * 1.1 or 1.0
    body = [_value_axis(top, "alerts"), _time_axis(t0, t1)]
    width = max(2.0, _x(t0 + timedelta(seconds=step), t0, t1) - ML - 1)
    count = 0
    for t, by_severity in sorted(buckets.items()):
        base = 0
        for severity in (s.value for s in Severity):
            n = by_severity.get(severity, 0)
            if not n:
                continue
            y_top, y_base = _y(base + n, top), _y(base, top)
            body.append(f'<rect class="bar" x="{_x(t, t0, t1):.1f}" y="{y_top:.1f}" width="{width:.1f}" '
                        f'height="{max(1.0, y_base - y_top):.1f}" fill="{SEVERITY_COLOURS[severity]}" data-value="{n}">'
                        f'<title>{t:%Y-%m-%d %H:%M} {severity}: {n}</title></rect>')
            base += n
            count += 1
    return _svg(panel, count, "".join(body))


def timeline_chart(panel: str, incidents: list[dict], t0: datetime, t1: datetime, root: str = "./") -> str:
    """One row per incident: a line from its first to its latest version, a dot per version."""
    left = ML + 110
    height = max(60, 22 * len(incidents) + MB + 8)
    body = [_time_axis(t0, t1, height, left)]
    count = 0
    for i, inc in enumerate(incidents):
        y = 14 + 22 * i
        pts = inc["points"]
        xs = [_x(t, t0, t1, left) for t, _, _ in pts]
        label = f'{inc["entity_type"]}:{inc["entity_id"]}'
        label = label if len(label) <= 24 else label[:23] + "…"
        body.append(f'<a href="{root}incident/{quote(inc["alert_id"], safe="")}"><text x="{left - 6}" y="{y + 4}" '
                    f'font-size="11" text-anchor="end" fill="#222">{_e(label)}</text></a>')
        body.append(f'<line x1="{min(xs):.1f}" y1="{y}" x2="{max(xs) + 0.5:.1f}" y2="{y}" stroke="#bbb" '
                    f'stroke-width="4"/>')
        for x, (t, severity, score) in zip(xs, pts):
            body.append(f'<circle class="pt" cx="{x:.1f}" cy="{y}" r="5" '
                        f'fill="{SEVERITY_COLOURS.get(severity, "#666")}" data-value="{score}"><title>'
                        f'{_e(inc["alert_id"])} {t:%Y-%m-%d %H:%M} {severity} score {score}</title></circle>')
            count += 1
    return _svg(panel, count, "".join(body), height)


# ---------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------
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

    dlq = q.dlq()
    bars = [(r["reason_class"], float(r["records"]), "#8a4fbf", "") for r in dlq]
    sections.append(_section("dlq", "Dead letters", "records dead-lettered in the last 7 days (wall clock), by reason",
                             bar_chart("dlq", bars, fmt="{:.0f}") + _table(dlq, ["reason_class", "records",
                                                                                 "last_seen"])))

    body = "<main>" + "".join(sections) + "</main>"
    return _page("dashboard", body, _filter_form(f, q.orgs()))


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
    member_rows = [{"api_key_id": k} for k in inc["api_key_ids"]]
    body = ("<main>"
            + _section("incident", "Incident", "the latest version of this incident", summary)
            + _section("reasons", "Reasons", "the signals behind the latest score (value vs baseline)",
                       reasons or "<p>no reasons recorded</p>")
            + _section("incident_timeline", "Timeline", "every version of the alert: opened, escalated, grown",
                       timeline + _table(version_rows, ["ts", "severity", "score", "events_seen", "members", "why"]))
            + _section("incident_members", "Member keys over time",
                       "max score per bucket of the member keys (first 20), two hours either side",
                       line_chart("incident_members", dict(series), window.t0, window.t1, top=1.0, label="score",
                                  colours=colours) + _legend(list(series), colours)
                       + _table(member_rows, ["api_key_id"], {"api_key_id": member_link}))
            + "</main>")
    return _page(f"incident {incident_id}", body, root="../")


def panels_json(q: DashboardQueries, query: dict) -> dict:
    f = q.filters(query)
    return {"filters": {"from": f.t0.isoformat(), "to": f.t1.isoformat(), "org": f.org, "key": f.key,
                        "step_s": f.step, "table": f.table},
            "top_keys": q.top_keys(f), "top_clusters": q.top_clusters(f), "score_over_time": q.score_over_time(f),
            "extraction_share": q.extraction_share(f), "campaign_timeline": q.campaign_timeline(f),
            "alert_volume": q.alert_volume(f), "dlq": q.dlq()}


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------
SECURITY_HEADERS = {
    # No script at all; inline styles and SVG only.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def build_web_app(q: DashboardQueries, middlewares=()):
    """The aiohttp application: GET-only routes over one :class:`DashboardQueries`
    (``middlewares``: the token check of :func:`distillguard.streams.web.web_middlewares`)."""
    import json

    from aiohttp import web

    def _default(value):
        return value.isoformat() if isinstance(value, datetime) else str(value)

    async def run(fn, *args):
        try:
            return await asyncio.to_thread(fn, q, *args)
        except BadFilter as exc:
            raise web.HTTPBadRequest(text=f"bad filter: {exc}") from None

    async def index(request):
        body = await run(render_dashboard, dict(request.query))
        return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)

    async def incident(request):
        body = await run(render_incident, request.match_info["incident_id"])
        if body is None:
            raise web.HTTPNotFound(text="no such incident")
        return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)

    async def api(request):
        data = await run(panels_json, dict(request.query))
        return web.Response(text=json.dumps(data, default=_default), content_type="application/json")

    async def health(request):
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=list(middlewares))
    app.router.add_get("/", index)
    app.router.add_get("/incident/{incident_id}", incident)
    app.router.add_get("/api/panels", api)
    app.router.add_get("/health", health)
    return app


def mount_on_faust(app, client, database: str, prefix: str = "/dashboard") -> None:
    """Serve the same pages from a worker's web server (the process that owns an embedded chDB)."""
    q = DashboardQueries(client, database)

    async def respond(web, fn, *args):
        try:
            body = await asyncio.to_thread(fn, q, *args)
        except BadFilter as exc:
            return web.text(f"bad filter: {exc}", status=400)
        if body is None:
            return web.text("no such incident", status=404)
        return web.html(body, headers=dict(SECURITY_HEADERS))

    @app.page(prefix)
    async def dashboard_redirect(web, request):
        return web.text("", status=302, headers={"Location": prefix + "/"})

    @app.page(prefix + "/")
    async def dashboard_index(web, request):
        return await respond(web, render_dashboard, dict(request.query))

    @app.page(prefix + "/incident/{incident_id}")
    async def dashboard_incident(web, request, incident_id):
        return await respond(web, render_incident, incident_id)


def open_queries(ch_settings) -> DashboardQueries:
    """A client on the configured ClickHouse, its schema brought up to date (as a worker would)."""
    from distillguard.sinks.clickhouse import make_client, prepare_schema

    client = make_client(ch_settings, reads=True)  # web threads query concurrently: session-less
    applied = prepare_schema(client, ch_settings)
    if applied:
        log.info("dashboard: schema migrations applied: %s", applied)
    return DashboardQueries(client, ch_settings.database)


def seed_demo(ch_settings, *, hydra_keys: int = 30) -> dict:
    """Run the built-in demo traffic through the detectors straight into ClickHouse (no Kafka).

    For a dashboard to look at without a broker, and for tests: the same pipeline code as the
    workers, rows written by the same sink.
    """
    from distillguard.devtools.demo_traffic import bad_records, demo_events, iter_encoded
    from distillguard.models.clusters import ClusterDetector
    from distillguard.models.pipeline import KeyPipeline
    from distillguard.models.step import Record, RequestProcessor
    from distillguard.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(ch_settings)
    step = RequestProcessor(KeyPipeline(), source_topic="llm.requests", clusters=ClusterDetector())
    records = list(iter_encoded(demo_events(hydra_keys=hydra_keys)))
    records[len(records) // 2:len(records) // 2] = [(b"bad", raw) for raw in bad_records()]
    alerts = dead = 0
    try:
        out = step.run([Record(raw, partition=0, offset=offset) for offset, (_, raw) in enumerate(records)], {})
        for letter in out.dead_letters:
            sink.add_dead_letter(letter.reason, "llm.requests", 0, letter.offset, letter.size)
            dead += 1
        for row, partition, offset in out.rows:
            sink.add(row, partition, offset, "llm.requests")
            if sink.should_flush():
                sink.flush()
        for alert in out.alerts:
            sink.add_alert(alert)
            alerts += 1
        sink.flush()
    finally:
        sink.close()
    return {"records": len(records), "alerts": alerts, "dead_letters": dead}


def serve(ch_settings, settings: DashboardSettings | None = None, *, out=None) -> None:
    from aiohttp import web

    from distillguard.sinks.errors import SinkUnavailable
    from distillguard.streams.web import require_token_when_exposed, web_middlewares

    settings = settings or DashboardSettings()
    require_token_when_exposed(settings.host, settings.token, setting="DG_DASHBOARD_HOST (--host)",
                               token_setting="DG_DASHBOARD_TOKEN (or DG_WEB_TOKEN)")
    try:
        q = open_queries(ch_settings)
    except SinkUnavailable as exc:
        if ch_settings.embedded:  # (chDB's own message, e.g. "Cannot lock file", went to stderr)
            raise SinkUnavailable(f"{exc}\nchDB opens a directory in one process only: if a worker (or another "
                                  f"dashboard) runs on it, use that worker's /dashboard/ pages, or stop it "
                                  f"first.") from None
        raise
    app = build_web_app(q, web_middlewares(settings.token))
    print(f"dashboard on http://{settings.host}:{settings.port}/ (ClickHouse: {ch_settings.describe()})",
          file=out, flush=True)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


def data_dir_settings(data_dir: str | Path | None):
    from distillguard.sinks.clickhouse import ClickHouseSettings

    return ClickHouseSettings(data_dir=Path(data_dir)) if data_dir else ClickHouseSettings()
