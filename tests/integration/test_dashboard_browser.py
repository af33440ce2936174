"""The built-in dashboard in a real headless browser (Debian ``chromium``), on embedded chDB.

Demo traffic is scored and written by the real sink (``distillguard dashboard --seed-demo``,
its own process: chDB allows one process per directory), then ``distillguard dashboard``
serves that directory and Chromium, driven over the DevTools protocol, loads the pages. The
DOM must have non-empty plots, and a screenshot of each plot's area must show drawn marks
(more than a blank panel's colours). Fails, never skips, when Chromium is missing.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import aiohttp
import pytest

from distillguard.devtools.embedded import free_port

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]
PANELS = ("top_keys", "top_clusters", "score_over_time", "extraction_share", "request_volume",
          "campaign_timeline", "alert_volume", "dlq")


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], capture_output=True, text=True,
                          timeout=240, **kw)


def _get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def dashboard(data_dir):
    root = data_dir
    seeded = _run(["dashboard", "--data-dir", str(root), "--seed-demo"])
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    port = free_port()
    log = open(root / "dashboard.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "dashboard", "--data-dir", str(root),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (root / "dashboard.log").read_text()[-3000:]
        try:
            if _get(url + "/health")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "dashboard did not answer in 60 s"
        time.sleep(0.25)
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


# -- a minimal DevTools-protocol client ------------------------------------------------------
class Browser:
    def __init__(self) -> None:
        self.binary = shutil.which("chromium")
        assert self.binary, "Debian chromium is required for the dashboard browser test: " \
                            "bash scripts/install-system-deps.sh"
        self.profile = tempfile.mkdtemp(prefix="dg-chromium-")
        self.proc = subprocess.Popen([self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "--window-size=1280,3000", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def page(self, url: str) -> dict:
        """Load ``url``; return the plots' DOM facts and a PNG screenshot of the page."""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}/json/list") as resp:
                targets = [t for t in await resp.json() if t["type"] == "page"]
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 10_000))
                events: list[dict] = []

                async def call(method: str, **params) -> dict:
                    n = next(ids)
                    await ws.send_json({"id": n, "method": method, "params": params})
                    while True:
                        msg = json.loads((await asyncio.wait_for(ws.receive(), 60)).data)
                        if msg.get("id") == n:
                            assert "error" not in msg, msg
                            return msg["result"]
                        events.append(msg)

                await call("Page.enable")
                await call("Emulation.setDeviceMetricsOverride", width=1280, height=3000, deviceScaleFactor=1,
                           mobile=False)
                nav = await call("Page.navigate", url=url)
                assert not nav.get("errorText"), nav
                deadline = time.monotonic() + 60
                while not any(e.get("method") == "Page.loadEventFired" for e in events):
                    assert time.monotonic() < deadline, "page did not load"
                    events.append(json.loads((await asyncio.wait_for(ws.receive(), 60)).data))
                facts = await call("Runtime.evaluate", returnByValue=True, expression="""(() => ({
                    title: document.title,
                    status: document.body.innerText.slice(0, 200),
                    plots: [...document.querySelectorAll('svg.plot')].map(svg => {
                        const r = svg.getBoundingClientRect();
                        return {panel: svg.dataset.panel, points: +svg.dataset.points,
                                dots: svg.querySelectorAll('circle.pt').length,
                                bars: svg.querySelectorAll('rect.bar').length,
                                lines: svg.querySelectorAll('polyline.series').length,
                                series: [...svg.querySelectorAll('polyline.series')].map(p => p.dataset.series),
                                empty: svg.querySelectorAll('text.empty').length,
                                x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height};
                    }),
                    links: [...document.querySelectorAll('a[href*="incident/"]')]
                        .map(a => new URL(a.getAttribute('href'), document.baseURI).href),
                }))()""")
                shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                return {**facts["result"]["value"], "png": base64.b64decode(shot["data"])}


@pytest.fixture(scope="module")
def browser():
    running = Browser()
    yield running
    running.close()


# -- a tiny PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes) ----------------
def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray(stride * height)
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return width, height, channels, bytes(out)


def region_colours(png: tuple[int, int, int, bytes], x: float, y: float, w: float, h: float) -> dict:
    """Distinct colours and the share of saturated (plotted, not grey/white) pixels in a box."""
    width, height, channels, pixels = png
    colours, saturated, total = set(), 0, 0
    for row in range(int(y), min(height, int(y + h))):
        base = row * width * channels
        for col in range(int(x), min(width, int(x + w)), 2):
            r, g, b = pixels[base + col * channels:base + col * channels + 3]
            colours.add((r, g, b))
            saturated += max(r, g, b) - min(r, g, b) > 60
            total += 1
    return {"colours": len(colours), "saturated": saturated / max(total, 1)}


def test_dashboard_plots_render_in_chromium(dashboard, browser):
    page = asyncio.run(browser.page(dashboard + "/"))
    plots = {p["panel"]: p for p in page["plots"]}
    assert set(PANELS) <= set(plots), page["status"]
    for name in PANELS:
        plot = plots[name]
        marks = plot["dots"] + plot["bars"]
        assert plot["points"] > 0 and marks >= plot["points"] and not plot["empty"], plot
        assert plot["w"] > 300 and plot["h"] > 50, plot
    assert plots["score_over_time"]["lines"] >= 1
    assert plots["extraction_share"]["lines"] == 2
    # The campaign timeline links each incident to its page: the sweeper key and the hydra cluster.
    assert any("key%3Ademo_sweeper" in link for link in page["links"])
    assert any("cluster%3A" in link for link in page["links"])

    png = decode_png(page["png"])
    assert png[0] == 1280
    for name in PANELS:
        plot = plots[name]
        seen = region_colours(png, plot["x"], plot["y"], plot["w"], plot["h"])
        # A blank plot is white with grey axes and text (no saturated pixel); a drawn one has coloured marks.
        assert seen["saturated"] > 0.002, (name, seen)


def test_filters_by_key_narrow_the_plots(dashboard, browser):
    page = asyncio.run(browser.page(dashboard + "/?key=demo_sweeper&range=all"))
    plots = {p["panel"]: p for p in page["plots"]}
    assert plots["score_over_time"]["series"] == ["demo_sweeper"]
    assert plots["top_keys"]["points"] == 1
    # Incidents filter by member key: a hydra member's page shows its cluster, not the sweeper's incident.
    assert any("key%3Ademo_sweeper" in link for link in page["links"])
    page = asyncio.run(browser.page(dashboard + "/?key=demo_hydra_infra_003&range=all"))
    assert page["links"] and all("cluster%3A" in link for link in page["links"])
    # A key nobody used: the plots say so instead of drawing.
    page = asyncio.run(browser.page(dashboard + "/?key=nobody&range=all"))
    plots = {p["panel"]: p for p in page["plots"]}
    assert plots["score_over_time"]["points"] == 0 and plots["score_over_time"]["empty"] == 1
    # ... and its pixels hold no coloured mark (the check above tells drawn from blank).
    plot = plots["score_over_time"]
    assert region_colours(decode_png(page["png"]), plot["x"], plot["y"], plot["w"], plot["h"])["saturated"] == 0


def test_incident_page_has_reasons_and_timeline(dashboard, browser):
    index = asyncio.run(browser.page(dashboard + "/"))
    cluster = next(link for link in index["links"] if "cluster%3A" in link)
    page = asyncio.run(browser.page(cluster))
    plots = {p["panel"]: p for p in page["plots"]}
    assert plots["incident_timeline"]["points"] >= 1
    assert plots["incident_members"]["lines"] >= 2  # member keys of the cluster
    status, body = _get(cluster)
    assert status == 200 and "cluster_keys" in body and "Reasons" in body
    # every member's own evidence from the stored events, quietest first
    members = int(re.search(r"<th>members</th>.*?<tbody><tr>(?:<td[^>]*>.*?</td>){5}<td>(\d+)</td>", body).group(1))
    section = body[body.index('id="incident_member_evidence"'):]
    rows = [re.findall(r"<td[^>]*>(?:<a [^>]*>)?(.*?)(?:</a>)?</td>", row) for row in
            re.findall(r"<tr>(.*?)</tr>", section)[1:]]
    assert len(rows) == members >= 2
    events = [int(row[1]) for row in rows]
    assert events == sorted(events) and events[-1] >= 2
    assert any(float(row[2]) >= 0 for row in rows if row[2])  # a median gap measured in ClickHouse


def test_read_only_and_validated(dashboard):
    assert _get(dashboard + "/?key=x%27%20OR%201%3D1")[0] == 400
    assert _get(dashboard + "/?from=yesterday")[0] == 400
    assert _get(dashboard + "/?range=forever")[0] == 400
    assert _get(dashboard + "/incident/no-such-incident")[0] == 404
    assert _get(dashboard + "/", method="POST")[0] == 405
    status, body = _get(dashboard + "/api/panels?range=all")
    data = json.loads(body)
    assert status == 200 and data["top_keys"] and data["alert_volume"] and data["dlq"]
    assert sum(r["records"] for r in data["dlq"]) == 3


def test_a_second_process_on_the_same_chdb_directory_is_told_why(dashboard, data_dir):
    second = _run(["dashboard", "--data-dir", str(data_dir), "--port", str(free_port())])
    assert second.returncode == 2
    assert "one process only" in second.stderr and "/dashboard/" in second.stderr


def test_worker_serves_metrics_and_the_dashboard_after_a_demo_run(pipeline, browser):
    """The demo traffic through the embedded broker and a worker (which owns the chDB): its
    ``/metrics`` has the pipeline gauges and its ``/dashboard/`` draws the same plots."""
    from distillguard.devtools.demo_traffic import bad_records, demo_events, iter_encoded

    records = list(iter_encoded(demo_events(users=30, campaign_events=400, hydra_keys=12)))
    records[100:100] = [(b"bad", raw) for raw in bad_records()]
    worker = pipeline.start_worker()
    pipeline.produce(records)
    pipeline.wait_processed(worker, len(records))
    deadline = time.monotonic() + 30
    while worker.get("/query/tables")["events"] < len(records) - len(bad_records()):
        assert time.monotonic() < deadline, "rows not flushed to ClickHouse"
        time.sleep(0.5)
    time.sleep(5.5)  # one tick of the gauges timer

    status, text = _get(worker.url + "/metrics")
    assert status == 200
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    assert values["distillguard_events_processed_total"] == len(records) - len(bad_records())
    assert sum(v for k, v in values.items() if k.startswith("distillguard_dead_letters_total")) == len(bad_records())
    sent = sum(v for k, v in values.items() if k.startswith("distillguard_alerts_total"))
    assert sent >= 1
    assert values["distillguard_sink_flush_seconds_count"] >= 1
    # every alert sent said how long it waited to be sent (cluster alerts counted alike)
    assert values["distillguard_alert_hold_seconds_count"] == sent
    assert 0 < values["distillguard_alert_hold_seconds_sum"] < 60 * sent
    # and how long after its event (the demo's event times are the past: the top buckets)
    assert values["distillguard_alert_delay_seconds_count"] == sent
    # every record (the bad ones too) said how long it waited on the topic: seconds, not days
    assert values["distillguard_input_age_seconds_count"] >= len(records)
    assert 0 < values["distillguard_input_age_seconds_sum"] < 60 * values["distillguard_input_age_seconds_count"]
    # the event loop's watcher woke ~10 times a second while the worker ran
    assert values["distillguard_event_loop_lag_seconds_count"] >= 50
    assert values["distillguard_state_bytes"] > 0 and values["distillguard_keys_in_state"] > 0
    lags = {k: v for k, v in values.items() if k.startswith("distillguard_consumer_lag{")}
    assert lags and all(v == 0 for v in lags.values()), lags  # caught up, one gauge per partition

    assert _get(worker.url + "/dashboard/?key=x%27")[0] == 400
    status, body = _get(worker.url + "/dashboard")  # redirected to /dashboard/
    assert status == 200 and 'data-panel="top_keys"' in body
    page = asyncio.run(browser.page(worker.url + "/dashboard/"))
    plots = {p["panel"]: p for p in page["plots"]}
    for name in ("top_keys", "top_clusters", "score_over_time", "extraction_share", "campaign_timeline",
                 "alert_volume", "dlq"):
        assert plots[name]["points"] > 0, (name, plots.get(name))
    incident = next(link for link in page["links"] if "key%3Ademo_sweeper" in link)
    page = asyncio.run(browser.page(incident))
    assert {p["panel"]: p["points"] for p in page["plots"]}["incident_timeline"] >= 1
