"""streams/web.py: loopback unless configured, a bearer token on every path but /health when
exposed; on the worker's and router's Faust web apps (Faust's own pages included), and on the
dashboard."""
from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from distillguard.errors import ConfigError
from distillguard.streams import feedback_follower
from distillguard.streams import web as dg_web
from distillguard.streams.settings import WorkerSettings

TOKEN = "t0ken-for-the-unit-tests-4f9a"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WEB_ENV = ("DG_WEB_BIND", "DG_WEB_HOST", "DG_WEB_TOKEN", "DG_ROUTER_WEB_BIND", "DG_ROUTER_WEB_HOST",
           "DG_ROUTER_WEB_TOKEN", "DG_DASHBOARD_HOST", "DG_DASHBOARD_TOKEN")


@pytest.fixture(autouse=True)
def _no_web_env(monkeypatch):
    for name in WEB_ENV:
        monkeypatch.delenv(name, raising=False)


def _statuses(app: web.Application, requests: list[tuple[str, dict]]) -> list[int]:
    """GET each (path, headers) from ``app`` served on a test server; the status codes."""
    async def run() -> list[int]:
        async with TestClient(TestServer(app)) as client:
            statuses = []
            for path, headers in requests:
                async with client.get(path, headers=headers, allow_redirects=False) as resp:
                    statuses.append(resp.status)
            return statuses

    return asyncio.run(run())


def _echo_app(token) -> web.Application:
    async def ok(request):
        return web.json_response({"ok": True})

    app = web.Application(middlewares=dg_web.web_middlewares(token))
    for path in ("/health", "/alerts", "/query/state"):
        app.router.add_get(path, ok)
    return app


@pytest.mark.parametrize("bind, loopback", [("127.0.0.1", True), ("127.0.0.53", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("", False), ("10.1.2.3", False),
                                            ("worker.example", False)])
def test_loopback_addresses(bind, loopback):
    assert dg_web.is_loopback(bind) is loopback


def test_loopback_needs_no_token():
    dg_web.require_token_when_exposed("127.0.0.1", None, setting="DG_WEB_BIND")
    dg_web.require_token_when_exposed("::1", SecretStr(""), setting="DG_WEB_BIND")  # empty = unset


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "10.1.2.3"])
@pytest.mark.parametrize("token", [None, SecretStr("")])
def test_exposed_without_a_token_is_a_configuration_error(bind, token):
    with pytest.raises(dg_web.WebExposedWithoutToken) as caught:
        dg_web.require_token_when_exposed(bind, token, setting="DG_WEB_BIND")
    assert isinstance(caught.value, ConfigError)
    assert f"DG_WEB_BIND={bind}" in str(caught.value) and "DG_WEB_TOKEN" in str(caught.value)


def test_a_short_token_is_refused_without_showing_it():
    with pytest.raises(dg_web.WeakWebToken) as caught:
        dg_web.require_token_when_exposed("0.0.0.0", SecretStr("hunter2"), setting="DG_WEB_BIND")
    assert "hunter2" not in str(caught.value) and "at least 16" in str(caught.value)
    dg_web.require_token_when_exposed("0.0.0.0", SecretStr(TOKEN), setting="DG_WEB_BIND")


def test_every_path_but_health_needs_the_token():
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    wrong_basic = base64.b64encode(b"anyone:not-the-token-at-all-x").decode()
    requests = [("/health", {}), ("/alerts", {}), ("/query/state", {}), ("/nowhere", {}),
                ("/alerts", {"Authorization": "Bearer wrong-token-of-some-length"}),
                ("/alerts", {"Authorization": f"Bearer {TOKEN}x"}),  # a longer one with it as prefix
                ("/alerts", {"Authorization": TOKEN}),  # no scheme
                ("/alerts", {"Authorization": f"Basic {wrong_basic}"}),
                ("/alerts", {"Authorization": "Basic %%%"}),
                ("/alerts", BEARER), ("/query/state", {"Authorization": f"bearer  {TOKEN} "}),
                ("/alerts", {"Authorization": f"Basic {basic}"}),  # a browser's prompt
                ("/nowhere", BEARER)]
    assert _statuses(_echo_app(SecretStr(TOKEN)), requests) == [
        200, 401, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 404]


def test_the_401_asks_for_credentials_and_says_nothing_else():
    async def run():
        async with TestClient(TestServer(_echo_app(TOKEN))) as client:
            async with client.get("/query/state?key=k") as resp:
                return resp.status, resp.headers.get("WWW-Authenticate", ""), await resp.text()

    status, challenge, body = asyncio.run(run())
    assert status == 401 and "Bearer" in challenge and "Basic" in challenge
    assert TOKEN not in body and "score" not in body


def test_tokens_are_compared_in_constant_time(monkeypatch):
    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(dg_web.hmac, "compare_digest", compare_digest)
    assert dg_web.token_matches(f"Bearer {TOKEN}", TOKEN)
    assert not dg_web.token_matches("Bearer nope", TOKEN)
    # digests of equal length: a wrong token's length is not told by how soon it is refused
    assert [(len(a), len(b)) for a, b in compared] == [(32, 32), (32, 32)]
    assert compared[0][0] == compared[0][1] != compared[1][0]


@pytest.mark.parametrize("header", ["Bearer \udcff\udcfe", "Basic " + base64.b64encode(b"u:\xff\xfe").decode(),
                                    "Bearer", "", "Basic", "Digest abc", " Bearer  "])
def test_malformed_credentials_are_refused_not_an_error(header):
    assert dg_web.token_matches(header, TOKEN) is False


def test_without_a_token_nothing_is_asked():
    assert dg_web.web_middlewares(None) == [] and dg_web.web_middlewares(SecretStr("")) == []
    assert _statuses(_echo_app(None), [("/alerts", {}), ("/health", {})]) == [200, 200]


def test_state_shown_without_the_detectors_verdict():
    info = {"events": 7, "score": 0.93, "alerting": True, "incident": 2, "last_offset": 41, "bytes": 300}
    assert dg_web.state_without_verdict(info) == {"events": 7, "last_offset": 41, "bytes": 300}


# --- the Faust apps ------------------------------------------------------------------------------


class _NoSink:
    client = None


def _worker_app(monkeypatch, tmp_path, **settings):
    from distillguard.streams.app import worker_app

    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    app = worker_app(WorkerSettings(**settings), pipeline=object(), sink=_NoSink())
    app.web.init_server()  # routes + Faust's blueprints, as the worker's web service does at start
    return app


def test_worker_listens_on_loopback_without_faust_pages_by_default(monkeypatch, tmp_path):
    app = _worker_app(monkeypatch, tmp_path)
    assert app.conf.web_bind == "127.0.0.1"
    assert not app.conf.web_router_enabled and not app.conf.web_tables_enabled
    # loopback, no token: served without credentials; Faust's /table/ and /router/ are gone
    assert _statuses(app.web.web_app, [("/health", {}), ("/metrics", {}), ("/table/", {}), ("/router/", {})]) \
        == [200, 200, 404, 404]


def test_worker_exposed_without_a_token_is_not_built(monkeypatch, tmp_path):
    with pytest.raises(dg_web.WebExposedWithoutToken, match="DG_WEB_BIND=0.0.0.0"):
        _worker_app(monkeypatch, tmp_path, web_bind="0.0.0.0")


def test_worker_with_a_token_asks_for_it_on_every_page_but_health(monkeypatch, tmp_path):
    monkeypatch.setenv("DG_WEB_BIND", "0.0.0.0")
    monkeypatch.setenv("DG_WEB_TOKEN", TOKEN)
    app = _worker_app(monkeypatch, tmp_path)
    assert app.conf.web_bind == "0.0.0.0"
    paths = ["/metrics", "/summary", "/alerts", "/query/tables", "/query/state?key=k", "/table/", "/router/",
             "/table/key-state/k/", "/"]
    with_token = [("/health", BEARER), ("/metrics", BEARER), ("/table/", BEARER), ("/router/", BEARER)]
    assert _statuses(app.web.web_app, [("/health", {})] + [(path, {}) for path in paths] + with_token) == \
        [200] + [401] * 9 + [200, 200, 404, 404]


def test_the_former_host_setting_still_chooses_the_bind_address(monkeypatch, tmp_path):
    # A deployment that set DG_WEB_HOST=0.0.0.0 stops with the reason; it is not quietly
    # moved to loopback, where its probes would no longer reach it.
    monkeypatch.setenv("DG_WEB_HOST", "0.0.0.0")
    with pytest.raises(dg_web.WebExposedWithoutToken):
        _worker_app(monkeypatch, tmp_path)


def test_router_app_binds_and_guards_as_the_worker(monkeypatch, tmp_path):
    from distillguard.streams.app import faust_app
    from distillguard.streams.router import RouterSettings

    app = faust_app(RouterSettings(), tmp_path, auto_offset_reset="earliest", replication_probe_topic="distill.alerts")
    assert app.conf.web_bind == "127.0.0.1" and app.conf.web_application_options["middlewares"] == []
    with pytest.raises(dg_web.WebExposedWithoutToken, match="DG_ROUTER_WEB_BIND=0.0.0.0"):
        faust_app(RouterSettings(web_bind="0.0.0.0"), tmp_path, auto_offset_reset="earliest",
                  replication_probe_topic="distill.alerts")
    monkeypatch.setenv("DG_ROUTER_WEB_BIND", "0.0.0.0")
    monkeypatch.setenv("DG_WEB_TOKEN", TOKEN)  # the workers' token serves the router too
    app = faust_app(RouterSettings(), tmp_path, auto_offset_reset="earliest", replication_probe_topic="distill.alerts")
    assert app.conf.web_bind == "0.0.0.0" and len(app.conf.web_application_options["middlewares"]) == 1


# --- the CLI and the dashboard -------------------------------------------------------------------


@pytest.mark.parametrize("command, env", [
    (["worker"], {"DG_WEB_BIND": "0.0.0.0"}),
    (["worker"], {"DG_WEB_HOST": "0.0.0.0"}),
    (["worker"], {"DG_WEB_BIND": "0.0.0.0", "DG_WEB_TOKEN": "short"}),
    (["router", "--routes", "/nonexistent/routes.yaml"], {"DG_ROUTER_WEB_BIND": "0.0.0.0"}),
    (["dashboard", "--host", "0.0.0.0"], {}),
    (["dashboard"], {"DG_DASHBOARD_HOST": "::"}),
])
def test_cli_refuses_an_exposed_endpoint_without_a_token(monkeypatch, tmp_path, capsys, command, env):
    from distillguard import cli
    from distillguard.dashboard import server as dashboard
    from distillguard.streams import router, topics

    def started(*args, **kwargs):  # fail fast, where a process that went on would block on Kafka
        raise AssertionError("went on to start: it must stop at the web settings")

    for module, name in ((topics, "ensure_topics"), (router, "router_topics"), (router, "create_router_app"),
                         (dashboard, "open_queries")):
        monkeypatch.setattr(module, name, started)
    monkeypatch.setenv("DG_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing there either
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(command + (["--data-dir", str(tmp_path)] if command[0] == "dashboard" else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"distillguard {command[0]}: ") and "TOKEN" in err
    assert not (tmp_path / "clickhouse").exists()  # it stopped before opening anything


def test_dashboard_app_asks_for_the_token(monkeypatch):
    from distillguard.dashboard.server import DashboardSettings, build_web_app

    monkeypatch.setenv("DG_WEB_TOKEN", TOKEN)  # the dashboard takes the workers' token too
    settings = DashboardSettings()
    app = build_web_app(object(), dg_web.web_middlewares(settings.token))
    assert _statuses(app, [("/health", {}), ("/", {}), ("/api/panels", {}), ("/incident/key:k:1", {})]) \
        == [200, 401, 401, 401]


def test_worker_process_sends_the_token_it_was_started_with(monkeypatch):
    from distillguard.devtools.processes import WorkerProcess

    worker = WorkerProcess("127.0.0.1:1", data_dir=None, env={"DG_WEB_TOKEN": TOKEN}, web_port=1)
    assert worker.request("/alerts").get_header("Authorization") == f"Bearer {TOKEN}"
    assert WorkerProcess("127.0.0.1:1", data_dir=None, web_port=1).request("/alerts").get_header("Authorization") \
        is None
    router = WorkerProcess("127.0.0.1:1", data_dir=None, command=("router",), web_port=1,
                           env={"DG_WEB_TOKEN": "the-workers-token-0000", "DG_ROUTER_WEB_TOKEN": TOKEN})
    assert router.request("/incidents").get_header("Authorization") == f"Bearer {TOKEN}"
