"""``distillguard dashboard``: a built-in, read-only web dashboard over ClickHouse.

Works on the embedded chDB default (no Grafana needed) and on a ClickHouse server: the
client comes from the sink's :func:`~distillguard.sinks.clickhouse.make_client`, so the same
``DG_DATA_DIR`` / ``DG_CLICKHOUSE_URL`` settings choose the backend. chDB allows one process
per data directory: run the dashboard on a directory no worker holds (after ``make demo``:
``distillguard dashboard --data-dir var/demo``), or use the worker's own ``/dashboard/``
pages (:func:`mount_on_faust`), served by the process that owns the directory.

The pages are drawn by :mod:`~distillguard.dashboard.pages` with the SVG plots of
:mod:`~distillguard.dashboard.charts`; this module holds the settings and the web app.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from distillguard.sinks.queries import BadFilter, DashboardQueries

from ..settings import DistillguardSettings
from .pages import panels_json, render_dashboard, render_incident

log = logging.getLogger(__name__)


class DashboardSettings(DistillguardSettings):
    """Where the dashboard listens (env prefix ``DG_DASHBOARD_``); loopback by default.

    Beyond loopback it needs a token (``DG_DASHBOARD_TOKEN``, or the workers' ``DG_WEB_TOKEN``)
    and refuses to start without one; browsers send it as the password of the Basic prompt."""

    model_config = SettingsConfigDict(env_prefix="DG_DASHBOARD_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)
    token: SecretStr | None = Field(None, validation_alias=AliasChoices("DG_DASHBOARD_TOKEN", "DG_WEB_TOKEN"))


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
    from distillguard.contracts.alert import split_exculpated
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
        sent, held = split_exculpated(out.alerts)  # routed as the workers route them
        for alert in sent:
            sink.add_alert(alert)
        for alert in held:
            sink.add_exculpated(alert)
        alerts = len(sent)
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
