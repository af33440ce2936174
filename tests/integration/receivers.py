"""The real Alertmanager (Debian ``prometheus-alertmanager``) as the router's routing engine, a local
webhook receiver it notifies, and the router in a child process.

The webhook receiver checks every request against Alertmanager's documented webhook payload
(version 4: ``status``, ``receiver``, ``groupLabels``, ``alerts`` …; a bad one is recorded in
``errors``, which the tests assert empty) and the bearer token the shipped config sends.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from aiohttp import web

from distillguard.contracts.feedback import Feedback
from distillguard.devtools.embedded import free_port


class Receiver:
    """An aiohttp server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict] = []  # every request that reached the handler (incl. faulted ones)
        self.errors: list[str] = []  # shape violations
        self.faults: list[list] = []  # [entity substring, kind, remaining, hang seconds]
        self.delay_s = 0.0  # every request takes this long (a slow service: deliveries are in flight)
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fault(self, entity: str, kind: str, count: int, hang_s: float = 3.0) -> None:
        """The next ``count`` requests mentioning ``entity`` get ``kind`` ("500" or "hang")."""
        with self.lock:
            self.faults.append([entity, kind, count, hang_s])

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> "Receiver":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def _stop():
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = {"method": request.method, "path": request.path, "query": dict(request.query),
                  "headers": dict(request.headers), "body": body, "at": time.time()}
        text = body.decode(errors="replace") + request.path
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f[0] in text and f[2] > 0), None)
            if fault is not None:
                fault[2] -= 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if fault is not None:
            record["fault"] = fault[1]
            if fault[1] == "500":
                return web.json_response({"error": "injected"}, status=500)
            # Hang past the client's timeout, then process it anyway (as a real service may).
            await asyncio.sleep(fault[3])
        with self.lock:
            return self.handle(record)

    def handle(self, record: dict) -> web.StreamResponse:  # pragma: no cover - per receiver
        raise NotImplementedError

    def bad(self, message: str, status: int = 400, **body) -> web.Response:
        self.errors.append(message)
        return web.json_response(body or {"error": message}, status=status)

    def wait(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{type(self).__name__}: timed out waiting for {what}; "
                             f"{len(self.requests)} requests, errors={self.errors}")


class AlertmanagerWebhookReceiver(Receiver):
    """Where Alertmanager's ``webhook_configs`` posts: keeps each notification (one per group)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.notifications: list[dict] = []

    def handle(self, record: dict) -> web.Response:
        if record["method"] != "POST" or record["path"] != "/hook":
            return self.bad(f"unknown endpoint {record['method']} {record['path']}", 404)
        if record["headers"].get("Authorization") != f"Bearer {self.token}":
            return self.bad("no bearer token", 401)
        try:
            body = json.loads(record["body"])
        except ValueError:
            return self.bad("body is not JSON")
        missing = {"version", "status", "receiver", "groupLabels", "commonLabels", "alerts"} - set(body)
        if missing or body.get("version") != "4" or body.get("status") not in ("firing", "resolved"):
            return self.bad(f"not an Alertmanager webhook payload: missing {missing}")
        self.notifications.append(body)
        return web.json_response({"received": True})

    def for_entity(self, entity_id: str, status: str | None = None) -> list[dict]:
        """Notifications naming this entity (optionally only firing / resolved ones)."""
        return [n for n in self.notifications if any(a["labels"].get("entity_id") == entity_id for a in n["alerts"])
                and (status is None or n["status"] == status)]


BLACKHOLE = ("route:\n  receiver: blackhole\n  group_by: [entity_type, entity_id]\n"
             "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
             "receivers:\n  - name: blackhole\n")


class Alertmanager:
    """The real Prometheus Alertmanager (Debian package), on a free port with its own config and storage.

    Not clustered (``--cluster.listen-address=``): replicas share nothing, so whatever is on
    one was posted to it. ``kill()`` is SIGKILL; ``start()`` again uses the same port.
    """

    BINARY = "/usr/bin/prometheus-alertmanager"

    def __init__(self, root: Path, config: str = BLACKHOLE) -> None:
        self.root = root
        self.port = free_port()
        self.config = config
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Alertmanager":
        binary = shutil.which("prometheus-alertmanager") or self.BINARY
        # No skip: a missing binary fails the test (make test installs it).
        assert Path(binary).exists(), f"{binary} missing: run scripts/install-system-deps.sh"
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "alertmanager.yml"
        config.write_text(self.config)
        self._log = open(self.root / "alertmanager.log", "ab")
        self._proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, (self.root / "alertmanager.log").read_text()
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("alertmanager not ready after 30s")

    def alerts(self, **filters) -> list[dict]:
        query = "&".join(f"filter={urllib.request.quote(f'{k}={v!r}'.replace(chr(39), chr(34)))}"
                         for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def active(self, entity_id: str) -> list[dict]:
        """This entity's alerts that are firing now (active or silenced, not resolved)."""
        try:
            return [a for a in self.alerts(entity_id=entity_id) if a["status"]["state"] != "resolved"]
        except OSError:
            return []  # down or restarting

    def silences(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v2/silences", timeout=5) as resp:
            return json.loads(resp.read())

    def kill(self) -> None:
        """SIGKILL: everything Alertmanager holds only in memory (all alerts) is gone."""
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        self._proc = None
        self._log.close()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        self._proc = None
        if self._log is not None:
            self._log.close()


class RouterRun:
    """``distillguard router`` in a child process with its own topics, app id and routes file."""

    def __init__(self, broker, root: Path, routes_yaml: str, alertmanager_urls: list[str], partitions: int = 4,
                 log_level: str = "info") -> None:
        import uuid

        from confluent_kafka.admin import AdminClient, NewTopic

        suffix = uuid.uuid4().hex[:8]
        self.broker, self.root, self.partitions = broker, root, partitions
        self.topics = {name: f"{name}-{suffix}" for name in ("alerts", "feedback", "actions", "failed")}
        root.mkdir(parents=True, exist_ok=True)
        self.routes_path = root / "routes.yaml"
        self.routes_path.write_text(routes_yaml)
        self.env = {"DG_ROUTER_APP_ID": f"router-{suffix}", "DG_ROUTER_ALERTS_TOPIC": self.topics["alerts"],
                    "DG_ROUTER_FEEDBACK_TOPIC": self.topics["feedback"],
                    "DG_ROUTER_ACTIONS_TOPIC": self.topics["actions"],
                    "DG_ROUTER_FAILED_TOPIC": self.topics["failed"], "DG_ROUTER_PARTITIONS": str(partitions),
                    "DG_ROUTER_SESSION_TIMEOUT_S": "6", "DG_ROUTER_DATA_DIR": str(root / "data"),
                    "DG_ROUTER_LOG_LEVEL": log_level, "DG_ALERTMANAGER_URLS": ",".join(alertmanager_urls),
                    "DG_ALERTMANAGER_TIMEOUT_S": "2"}
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(self.topics["alerts"], partitions, 1)]).values():
            future.result(15)
        self.processes: list = []

    def start(self):
        from distillguard.devtools.processes import WorkerProcess

        process = WorkerProcess(self.broker.bootstrap, self.root / "data", env=self.env,
                                command=("router", "--routes", str(self.routes_path)),
                                log_path=self.root / f"router-{len(self.processes)}.log")
        # The router's own DG_ROUTER_WEB_PORT: WorkerProcess sets DG_WEB_PORT for workers.
        process.web_port = free_port()
        process.env = {**process.env, "DG_ROUTER_WEB_PORT": str(process.web_port)}
        self.processes.append(process)
        return process.start()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("router-*.log")))

    def _producer(self):
        from confluent_kafka import Producer

        # murmur2: the partitioner Faust uses, so test alerts land where the worker's would.
        return Producer({"bootstrap.servers": self.broker.bootstrap, "partitioner": "murmur2_random",
                         "linger.ms": 2})

    def send_alerts(self, alerts: list[dict]) -> None:
        producer = self._producer()
        for alert in alerts:
            producer.produce(self.topics["alerts"], key=alert["entity_id"].encode(), value=json.dumps(alert).encode())
        assert producer.flush(30) == 0

    def feedback(self, entity_type: str, entity_id: str, action: str, reason: str = "test",
                 until: float | None = None) -> Feedback:
        from distillguard.feedback import produce_feedback

        record = Feedback.new(entity_type, entity_id, action, reason=reason, actor="oncall-test", until=until)
        produce_feedback({"bootstrap.servers": self.broker.bootstrap}, self.topics["feedback"], record)
        return record

    def consume(self, name: str, *, expect: int | None = None, timeout: float = 30.0) -> list[dict]:
        import uuid

        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.assign([TopicPartition(self.topics[name], p, 0) for p in range(self.partitions)])
        records, deadline, idle = [], time.monotonic() + timeout, time.monotonic()
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.3)
                if msg is None or msg.error():
                    if expect is None and time.monotonic() - idle > 2:
                        break
                    if expect is not None and len(records) >= expect:
                        break
                    continue
                idle = time.monotonic()
                records.append(json.loads(msg.value()))
        finally:
            consumer.close()
        return records

    def incidents(self, process=None) -> list[dict]:
        process = process or self.processes[-1]
        with urllib.request.urlopen(process.url + "/incidents", timeout=5) as resp:
            return json.loads(resp.read())["incidents"]

    def metrics(self, process=None) -> str:
        process = process or self.processes[-1]
        with urllib.request.urlopen(process.url + "/metrics", timeout=5) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def make_alert(entity_id: str, *, entity_type: str = "key", severity: str = "warning", score: float = 0.6,
               keys: list[str] | None = None, n: int = 1, **extra) -> dict:
    return {**extra, "schema": "distill.alert.v1", "alert_id": f"{entity_type}:{entity_id}:{n}",
            "ts": "2026-02-01T10:00:00Z", "entity_type": entity_type, "entity_id": entity_id,
            "api_key_ids": keys or [entity_id], "score": score, "severity": severity, "events_seen": 150,
            "detector": "test/1",
            "reasons": [{"signal": "extraction_style_share", "value": 0.82, "baseline": 0.05, "weight": 1.6},
                        {"signal": "topic_novelty", "value": 0.71, "baseline": 0.5, "weight": 0.6}]}
