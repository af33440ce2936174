"""Secrets never reach logs, metrics, endpoints or alerts; no prompt text at rest; the web
endpoints listen on loopback unless configured and ask for a token beyond it.

Worker subprocesses run with recognisable secrets in their environment: a running worker
(debug logs) and workers whose start fails because of those credentials (a SASL handshake
the broker refuses, a ClickHouse URL with a password that cannot be reached). Their whole
stdout/stderr, their web endpoints and every topic they write are searched for the secrets.

Web exposure (#17 finding 6): which address a real worker's socket listens on is read from
/proc/net/tcp{,6}; exposed workers, routers and dashboards without a token must not start.
"""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from distillguard.devtools.demo_traffic import demo_events, iter_encoded
from distillguard.devtools.embedded import free_port

from .conftest import wait_for

sys.path.insert(0, str(Path(__file__).parent))
from receivers import RouterRun  # noqa: E402

KAFKA_SECRET = "Kafka-S3cret-7f3a91"
CLICKHOUSE_SECRET = "ClickHouse-S3cret-c04e2b"
WEB_TOKEN = "web-t0ken-for-the-security-test-91c2"
SECRETS = (KAFKA_SECRET, CLICKHOUSE_SECRET, WEB_TOKEN)


def _run_failing_worker(pipeline, tmp_path, name: str, *, command=("worker",), expect_code=None, **env) -> str:
    """Start a worker (or ``command``) expected to fail at start-up; its whole output."""
    full = {**os.environ, **pipeline.env, "DG_KAFKA_BOOTSTRAP": pipeline.broker.bootstrap,
            "DG_DATA_DIR": str(tmp_path / name), "DG_WEB_PORT": str(free_port()), "DG_LOG_LEVEL": "debug", **env}
    done = subprocess.run([sys.executable, "-m", "distillguard.cli", *command], env=full, capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode != 0, output[-2000:]
    assert expect_code is None or done.returncode == expect_code, (done.returncode, output[-2000:])
    return output



def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP ``port`` (/proc/net/tcp and tcp6)."""
    found = set()
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if sys.byteorder == "little":  # the kernel prints each 32-bit word in host order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def _own_non_loopback_ipv4() -> list[str]:
    """This host's own IPv4 addresses other than loopback (the LOCAL entries of the FIB)."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    return sorted({prev.split("|--")[1].strip() for prev, line in zip(lines, lines[1:])
                   if "|--" in prev and line.strip() == "/32 host LOCAL"} - {"127.0.0.1"})


def _status(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_web_endpoint_listens_on_loopback_only_by_default(pipeline):
    worker = pipeline.start_worker()
    assert _listening_addresses(worker.web_port) == {"127.0.0.1"}
    for address in _own_non_loopback_ipv4():  # and from the network, nobody answers
        with pytest.raises(OSError):
            socket.create_connection((address, worker.web_port), timeout=5).close()
    assert worker.get("/health")["status"] == "ok"  # where it does listen, it answers


def test_exposed_endpoints_without_a_token_refuse_to_start(pipeline, tmp_path):
    output = _run_failing_worker(pipeline, tmp_path, "exposed", expect_code=2, DG_WEB_BIND="0.0.0.0")
    assert "distillguard worker: DG_WEB_BIND=0.0.0.0" in output and "DG_WEB_TOKEN is not set" in output
    output = _run_failing_worker(pipeline, tmp_path, "router", expect_code=2, DG_ROUTER_WEB_BIND="0.0.0.0",
                                 command=("router", "--routes", str(tmp_path / "routes.yaml")))
    assert "distillguard router: DG_ROUTER_WEB_BIND=0.0.0.0" in output
    output = _run_failing_worker(pipeline, tmp_path, "dashboard", expect_code=2,
                                 command=("dashboard", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")))
    assert "distillguard dashboard: DG_DASHBOARD_HOST (--host)=0.0.0.0" in output
    output = _run_failing_worker(pipeline, tmp_path, "weak", expect_code=2, DG_WEB_BIND="0.0.0.0",
                                 DG_WEB_TOKEN="letmein")
    assert "at least 16" in output and "letmein" not in output


def test_exposed_endpoint_asks_for_the_token_on_every_page_but_health(pipeline):
    events = demo_events(seed=5, users=5, campaign_events=150)
    worker = pipeline.start_worker(DG_WEB_BIND="0.0.0.0", DG_WEB_TOKEN=WEB_TOKEN)
    assert _listening_addresses(worker.web_port) == {"0.0.0.0"}
    pipeline.produce(list(iter_encoded(events)))
    pipeline.wait_processed(worker, len(events))  # /health: no token needed (probes)
    sweeper_events = sum(e["api_key_id"] == "demo_sweeper" for e in events)

    guarded = {"/alerts": 200, "/summary": 200, "/query/tables": 200, "/query/state?key=demo_sweeper": 200,
               "/metrics": 200, "/dashboard/": 200, "/dashboard": 200, "/": 200,
               # Faust's own pages are off (/table/ would serve a key's raw state): 404 behind the token
               "/table/": 404, "/table/key-state/demo_sweeper/": 404, "/router/": 404}
    for path, expected in guarded.items():
        status, body = _status(worker.url + path)
        assert status == 401 and "demo_sweeper" not in body, (path, status, body[:200])
        assert _status(worker.url + path, "not-the-token-but-long-enough")[0] == 401, path
        assert _status(worker.url + path, WEB_TOKEN)[0] == expected, path
    assert _status(worker.url + "/health")[0] == 200

    # /query/state says how many events a key's detector applied, never what it thinks of it
    state = worker.get("/query/state?key=demo_sweeper")
    assert state["info"]["events"] == sweeper_events
    assert not {"score", "alerting", "incident"} & set(state["info"]), state


def test_secrets_absent_from_logs_metrics_endpoints_and_topics(pipeline, tmp_path):
    events = demo_events(seed=11, users=20, campaign_events=400)
    prompts = {e["prompt"] for e in events if len(e["prompt"]) >= 24}
    worker = pipeline.start_worker(DG_KAFKA_SASL_USERNAME="dg-worker", DG_KAFKA_SASL_PASSWORD=KAFKA_SECRET,
                                   DG_CLICKHOUSE_USER="dg", DG_CLICKHOUSE_PASSWORD=CLICKHOUSE_SECRET,
                                   DG_WEB_TOKEN=WEB_TOKEN, DG_LOG_LEVEL="debug")
    pipeline.produce(list(iter_encoded(events)) + [(b"bad", b"{not json")])
    pipeline.wait_processed(worker, len(events) + 1)

    served = {path: _status(worker.url + path, WEB_TOKEN) for path in
              ("/health", "/metrics", "/summary", "/alerts", "/query/tables", "/query/state?key=demo_sweeper",
               "/dashboard/")}
    assert {path: status for path, (status, _) in served.items()} == dict.fromkeys(served, 200)
    served = {path: body for path, (_, body) in served.items()}
    alerts = pipeline.consume_all(pipeline.settings.alerts_topic)
    assert alerts, "the sweep should have raised an alert"
    worker.stop()
    log_text = worker.log_path.read_text(errors="replace")
    assert "DEBUG" in log_text or "debug" in log_text.lower()  # the most talkative level was on

    for secret in SECRETS:
        assert secret not in log_text
        for path, body in served.items():
            assert secret not in body, path
        assert not [m for m in alerts if secret.encode() in m.value()]

    # No prompt text at rest: not in alerts, the per-key state changelog or the link records
    # (the DLQ keeps a bad record's bytes on purpose: it is the evidence of what was sent).
    changelog = pipeline.consume_all(f"{pipeline.settings.app_id}-key-state-changelog")
    links = pipeline.consume_all(pipeline.settings.links_topic, expect=None)
    assert changelog and links
    for records, what in ((alerts, "alerts"), (changelog, "changelog"), (links, "links")):
        blob = b"\n".join(m.value() or b"" for m in records)
        leaked = [p for p in prompts if p.encode() in blob]
        assert not leaked, (what, leaked[:3])
    for path in ("/summary", "/alerts", "/dashboard/"):
        assert not [p for p in prompts if p in served[path]], path


def test_secrets_absent_when_credentials_fail_at_startup(pipeline, tmp_path):
    # SASL/SCRAM the broker refuses: the worker gives up, saying why, without the password.
    output = _run_failing_worker(pipeline, tmp_path, "sasl", DG_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                                 DG_KAFKA_SASL_MECHANISM="SCRAM-SHA-512", DG_KAFKA_SASL_USERNAME="dg-worker",
                                 DG_KAFKA_SASL_PASSWORD=KAFKA_SECRET, DG_WEB_TOKEN=WEB_TOKEN)
    assert "SASL" in output
    assert KAFKA_SECRET not in output and WEB_TOKEN not in output
    # A ClickHouse server URL carrying the password, and nothing listening there.
    port = free_port()
    output = _run_failing_worker(pipeline, tmp_path, "clickhouse",
                                 DG_CLICKHOUSE_URL=f"http://dg:{CLICKHOUSE_SECRET}@127.0.0.1:{port}/distillguard")
    assert "cannot open ClickHouse at http://127.0.0.1:" in output
    assert CLICKHOUSE_SECRET not in output
    output = _run_failing_worker(pipeline, tmp_path, "clickhouse2", DG_CLICKHOUSE_USER="dg",
                                 DG_CLICKHOUSE_PASSWORD=CLICKHOUSE_SECRET,
                                 DG_CLICKHOUSE_URL=f"http://127.0.0.1:{port}/distillguard")
    assert CLICKHOUSE_SECRET not in output


ROUTES = """
lifecycle: {tick_s: 1}
"""


def test_router_and_dashboard_exposed_ask_for_the_token(broker, tmp_path):
    run = RouterRun(broker, tmp_path / "router", ROUTES, ["http://127.0.0.1:9"])  # no Alertmanager there
    run.env.update({"DG_ROUTER_WEB_BIND": "0.0.0.0", "DG_WEB_TOKEN": WEB_TOKEN})
    router = run.start()  # ready: /health answered without the token
    try:
        assert _listening_addresses(router.web_port) == {"0.0.0.0"}
        for path in ("/incidents", "/metrics", "/table/", "/router/"):
            assert _status(router.url + path)[0] == 401, path
        assert [_status(router.url + path, WEB_TOKEN)[0] for path in ("/incidents", "/metrics", "/table/")] == \
            [200, 200, 404]
    finally:
        router.stop()

    # The standalone dashboard over a chDB directory (seeded, no Kafka), on every interface.
    data_dir = tmp_path / "dashboard"
    cli = [sys.executable, "-m", "distillguard.cli", "dashboard", "--data-dir", str(data_dir)]
    seeded = subprocess.run([*cli, "--seed-demo"], capture_output=True, timeout=240)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    port = free_port()
    env = {**os.environ, "DG_WEB_TOKEN": WEB_TOKEN}
    with open(tmp_path / "dashboard.log", "wb") as log:
        dashboard = subprocess.Popen([*cli, "--host", "0.0.0.0", "--port", str(port)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _health_answers(url, dashboard), "the dashboard's /health", timeout=90)
            assert _listening_addresses(port) == {"0.0.0.0"}
            assert _status(url + "/")[0] == _status(url + "/api/panels")[0] == 401
            page = _status(url + "/", WEB_TOKEN)
            assert page[0] == 200 and "demo_sweeper" in page[1]
            # a browser's login prompt: the token as password
            basic = base64.b64encode(f"on-call:{WEB_TOKEN}".encode()).decode()
            request = urllib.request.Request(url + "/api/panels", headers={"Authorization": f"Basic {basic}"})
            with urllib.request.urlopen(request, timeout=30) as resp:
                assert resp.status == 200
        finally:
            dashboard.terminate()
            dashboard.wait(15)


def _health_answers(url: str, process: subprocess.Popen) -> bool:
    assert process.poll() is None, f"the dashboard exited with {process.returncode}"
    try:
        return _status(url + "/health")[0] == 200
    except OSError:
        return False
