"""Local HTTP receivers that speak the documented APIs the router pages (PagerDuty Events v2,
Opsgenie Alert API, Slack incoming webhooks, a signed webhook) and a real Alertmanager.

Each receiver validates every request against the vendor's documented shape (a bad request
gets the vendor's 400 and is recorded in ``errors``, which the tests assert empty), keeps
the vendor's dedup semantics (a trigger for an open dedup key / alias is collapsed into the
open incident, not a new page) and can be told to fail on purpose: answer 500, or hang past
the router's timeout, for the next N requests that mention a given entity.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from aiohttp import web

from distillguard.embedded import free_port


def _iso_ok(value) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


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


class PagerDutyReceiver(Receiver):
    """Events API v2 (``POST /v2/enqueue``), with PagerDuty's dedup: one incident per open dedup_key."""

    SEVERITIES = {"critical", "error", "warning", "info"}
    TOP = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}

    def __init__(self, routing_key: str) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.events: list[dict] = []  # accepted events, in order
        self.incidents: dict[str, str] = {}  # dedup_key -> triggered | acknowledged | resolved
        self.pages: list[str] = []  # dedup keys of triggers that opened a new incident (= a page)

    def handle(self, record: dict) -> web.Response:
        if record["method"] != "POST" or record["path"] != "/v2/enqueue":
            return self.bad(f"unknown endpoint {record['method']} {record['path']}", 404)
        if not record["headers"].get("Content-Type", "").startswith("application/json"):
            return self.bad("content type must be application/json")
        try:
            event = json.loads(record["body"])
        except ValueError:
            return self.bad("body is not JSON", status="invalid event", message="Event object is invalid")
        errors = []
        if set(event) - self.TOP:
            errors.append(f"unknown fields {set(event) - self.TOP}")
        if event.get("routing_key") != self.routing_key:
            errors.append("routing_key wrong")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append(f"event_action {action!r}")
        dedup = event.get("dedup_key")
        if not isinstance(dedup, str) or not 0 < len(dedup) <= 255:
            errors.append("dedup_key missing or longer than 255")
        if action == "trigger":
            payload = event.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not isinstance(payload.get(name), str) or not payload.get(name):
                    errors.append(f"payload.{name} missing")
            if len(payload.get("summary", "")) > 1024:
                errors.append("payload.summary longer than 1024")
            if payload.get("severity") not in self.SEVERITIES:
                errors.append("payload.severity invalid")
            if "timestamp" in payload and not _iso_ok(payload["timestamp"]):
                errors.append("payload.timestamp not ISO 8601")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                errors.append("custom_details not an object")
            for link in event.get("links", []):
                if not isinstance(link, dict) or "href" not in link:
                    errors.append("link without href")
        elif "payload" in event:
            errors.append(f"{action} carries a payload")
        if errors:
            return self.bad("; ".join(errors), status="invalid event", message="Event object is invalid",
                            errors=errors)
        self.events.append(event)
        state = self.incidents.get(dedup)
        if action == "trigger":
            if state in (None, "resolved"):
                self.pages.append(dedup)
                self.incidents[dedup] = "triggered"
        elif state is not None and state != "resolved":
            self.incidents[dedup] = "acknowledged" if action == "acknowledge" else "resolved"
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup},
                                 status=202)

    def actions_for(self, entity: str) -> list[str]:
        return [e["event_action"] for e in self.events if entity in e["dedup_key"]]


class OpsgenieReceiver(Receiver):
    """Alert API: create (alias dedup), acknowledge, close, priority; ``Authorization: GenieKey``."""

    PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.alerts: dict[str, dict] = {}  # alias -> {status, count, priority, acknowledged}
        self.calls: list[tuple[str, str]] = []  # (verb, alias)
        self.pages: list[str] = []

    def _accepted(self) -> web.Response:
        return web.json_response({"result": "Request will be processed", "took": 0.01,
                                  "requestId": hashlib.md5(str(time.time()).encode()).hexdigest()}, status=202)

    def handle(self, record: dict) -> web.Response:
        if record["headers"].get("Authorization") != f"GenieKey {self.api_key}":
            return self.bad("Authorization must be 'GenieKey <api key>'", 401)
        try:
            body = json.loads(record["body"] or b"{}")
        except ValueError:
            return self.bad("body is not JSON")
        parts = record["path"].strip("/").split("/")
        if record["method"] == "POST" and parts == ["v2", "alerts"]:
            message, alias = body.get("message"), body.get("alias")
            errors = []
            if not isinstance(message, str) or not 0 < len(message) <= 130:
                errors.append("message missing or longer than 130")
            if not isinstance(alias, str) or not 0 < len(alias) <= 512:
                errors.append("alias missing or longer than 512")
            if len(body.get("description", "")) > 15000:
                errors.append("description longer than 15000")
            if body.get("priority", "P3") not in self.PRIORITIES:
                errors.append("priority invalid")
            if not all(isinstance(v, str) for v in body.get("details", {}).values()):
                errors.append("details values must be strings")
            if not isinstance(body.get("tags", []), list):
                errors.append("tags must be a list")
            if errors:
                return self.bad("; ".join(errors), 422)
            self.calls.append(("create", alias))
            alert = self.alerts.get(alias)
            if alert is None or alert["status"] == "closed":
                self.pages.append(alias)
                self.alerts[alias] = {"status": "open", "count": 1, "priority": body.get("priority", "P3"),
                                      "acknowledged": False, "message": message}
            else:
                alert["count"] += 1  # Opsgenie deduplicates an open alias
            return self._accepted()
        if len(parts) == 4 and parts[:2] == ["v2", "alerts"] and parts[3] in ("acknowledge", "close", "priority"):
            if record["query"].get("identifierType") != "alias":
                return self.bad("identifierType must be alias for dedup aliases")
            alias, verb = parts[2], parts[3]
            if (verb == "priority") != (record["method"] == "PUT"):
                return self.bad(f"{verb} must be {'PUT' if verb == 'priority' else 'POST'}", 405)
            alert = self.alerts.get(alias)
            if alert is None:
                return self.bad(f"no alert with alias {alias}", 404)
            self.calls.append((verb, alias))
            if verb == "acknowledge":
                alert["acknowledged"] = True
            elif verb == "close":
                alert["status"] = "closed"
            else:
                if body.get("priority") not in self.PRIORITIES:
                    return self.bad("priority invalid", 422)
                alert["priority"] = body["priority"]
            return self._accepted()
        return self.bad(f"unknown endpoint {record['method']} {record['path']}", 404)


class SlackReceiver(Receiver):
    """An incoming webhook at a secret path: JSON ``text`` (+ optional ``blocks``), answers ``ok``."""

    def __init__(self) -> None:
        super().__init__()
        self.path = "/services/T0DISTILL/B0GUARD/" + hashlib.sha1(os.urandom(8)).hexdigest()[:24]
        self.messages: list[dict] = []

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    def handle(self, record: dict) -> web.Response:
        if record["method"] != "POST" or record["path"] != self.path:
            return web.Response(text="no_service", status=404)
        try:
            body = json.loads(record["body"])
        except ValueError:
            self.errors.append("invalid_payload")
            return web.Response(text="invalid_payload", status=400)
        ok = isinstance(body.get("text"), str) and body["text"] and all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in body.get("blocks", []))
        if not ok or len(body.get("blocks", [])) > 50:
            self.errors.append("invalid_blocks")
            return web.Response(text="invalid_blocks", status=400)
        self.messages.append(body)
        return web.Response(text="ok")


class WebhookReceiver(Receiver):
    """A receiver that checks the HMAC signature and timestamp, and dedups by delivery id."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.deliveries: list[dict] = []

    def handle(self, record: dict) -> web.Response:
        headers = record["headers"]
        ts, signature = headers.get("X-Distillguard-Timestamp", ""), headers.get("X-Distillguard-Signature", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + record["body"],
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self.bad("bad signature", 401)
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return self.bad("stale timestamp", 401)
        body = json.loads(record["body"])
        if body.get("schema") != "distill.incident.v1" or body.get("event") not in ("trigger", "acknowledge",
                                                                                   "resolve"):
            return self.bad("unknown body")
        self.deliveries.append({"id": headers.get("X-Distillguard-Delivery"), **body})
        return web.json_response({"received": True})


class Alertmanager:
    """The real Prometheus Alertmanager (Debian package), on a free port with its own config and storage."""

    BINARY = "/usr/bin/prometheus-alertmanager"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Alertmanager":
        binary = shutil.which("prometheus-alertmanager") or self.BINARY
        # No skip: a missing binary fails the test (make test installs it).
        assert Path(binary).exists(), f"{binary} missing: run scripts/install-system-deps.sh"
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "alertmanager.yml"
        config.write_text("route:\n  receiver: blackhole\n  group_by: [entity_type, entity_id]\n"
                          "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
                          "receivers:\n  - name: blackhole\n")
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

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        self._proc = None
        self._log.close()


class RouterRun:
    """``distillguard router`` in a child process with its own topics, app id and routes file."""

    def __init__(self, broker, root: Path, routes_yaml: str, secrets: dict[str, str], partitions: int = 4,
                 log_level: str = "info") -> None:
        import uuid

        from confluent_kafka.admin import AdminClient, NewTopic

        suffix = uuid.uuid4().hex[:8]
        self.broker, self.root, self.partitions = broker, root, partitions
        self.topics = {name: f"{name}-{suffix}" for name in ("alerts", "feedback", "actions", "failed")}
        root.mkdir(parents=True, exist_ok=True)
        self.routes_path = root / "routes.yaml"
        self.routes_path.write_text(routes_yaml)
        self.secrets = secrets
        self.env = {"DG_ROUTER_APP_ID": f"router-{suffix}", "DG_ROUTER_ALERTS_TOPIC": self.topics["alerts"],
                    "DG_ROUTER_FEEDBACK_TOPIC": self.topics["feedback"],
                    "DG_ROUTER_ACTIONS_TOPIC": self.topics["actions"],
                    "DG_ROUTER_FAILED_TOPIC": self.topics["failed"], "DG_ROUTER_PARTITIONS": str(partitions),
                    "DG_ROUTER_SESSION_TIMEOUT_S": "6", "DG_ROUTER_DATA_DIR": str(root / "data"),
                    "DG_ROUTER_LOG_LEVEL": log_level, **secrets}
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(self.topics["alerts"], partitions, 1)]).values():
            future.result(15)
        self.processes: list = []

    def start(self):
        from distillguard.processes import WorkerProcess

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
                 until: float | None = None) -> dict:
        from distillguard.feedback import feedback_record, produce_feedback

        record = feedback_record(entity_type, entity_id, action, reason=reason, actor="oncall-test", until=until)
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
