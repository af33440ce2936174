"""The worker's /health: what the Kubernetes probes (deploy/k8s) ask."""
from __future__ import annotations

import asyncio
import json

import pytest

from distillguard.streams import feedback_follower
from distillguard.streams.app import worker_app
from distillguard.streams.settings import WorkerSettings


class _Request:
    method = "GET"
    match_info: dict = {}
    query: dict = {}


class _NoSink:
    client = None


@pytest.fixture
def app(offline_worker):
    return offline_worker.app  # (what worker_app returns; tests/unit/streams/conftest.py)


def _health(app) -> tuple[int, dict]:
    response = asyncio.run(app.web.views["/health"](_Request()))
    return response.status, json.loads(response.body)


def test_health_is_ok_with_the_counters(app):
    status, body = _health(app)
    assert status == 200 and body["status"] == "ok" and body["counters"]["events"] == 0


@pytest.mark.parametrize("agent_name", ["process-requests", "detect-clusters"])
def test_health_fails_once_an_agent_crashed(app, agent_name):
    agent = app.agents[agent_name]
    # What Faust does when an exception escapes the agent's loop (Agent._execute_actor).
    asyncio.run(agent._on_error(agent, RuntimeError("prompt text must not show here")))
    status, body = _health(app)
    assert status == 503 and body["crashed"] == {agent_name: "RuntimeError"}
    assert "prompt text" not in json.dumps(body)


class _FailingSink(_NoSink):
    def __init__(self, failing_for_s: float) -> None:
        import time

        self._failing_since = time.monotonic() - failing_for_s


@pytest.mark.parametrize("failing_for_s, expected", [(5.0, 200), (31.0, 503)])
def test_health_fails_while_clickhouse_keeps_failing(monkeypatch, tmp_path, failing_for_s, expected):
    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    app = worker_app(WorkerSettings(sink_failing_unhealthy_s=30), pipeline=object(), sink=_FailingSink(failing_for_s))
    status, body = _health(app)
    assert status == expected
    if expected == 503:
        assert body["status"] == "sink failing" and body["sink_failing_s"] >= 31
