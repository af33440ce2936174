"""The dashboard's plots: SVG drawn on the server (no JavaScript, no CDN).

Each ``<svg class="plot">`` carries ``data-panel`` and ``data-points`` (how many data points
it draws), so a test or a browser check can tell an empty panel from a drawn one.
"""
from __future__ import annotations

import html
from datetime import datetime, timedelta
from urllib.parse import quote

from distillguard.contracts.alert import Severity

SEVERITY_COLOURS = dict(zip((s.value for s in Severity), ("#2f80c0", "#e0a020", "#d03030")))  # info, warning, critical
PALETTE = ("#2f80c0", "#d03030", "#2a9d5c", "#8a4fbf", "#e0a020", "#17a2b8", "#c05080", "#6c757d")
RANK_NAMES = {0: "", **{s.rank: s.value for s in Severity}}  # 0: no incident

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
