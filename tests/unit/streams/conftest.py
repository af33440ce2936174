"""A detector worker with no broker and no ClickHouse behind it: its Faust app, agents, web
views and outbox, for tests of what the worker decides."""
from __future__ import annotations

import pytest

from distillguard.streams import feedback_follower
from distillguard.streams.app import DetectorWorker
from distillguard.streams.settings import WorkerSettings


class _NoSink:
    client = None


@pytest.fixture
def offline_worker(monkeypatch, tmp_path) -> DetectorWorker:
    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    return DetectorWorker(WorkerSettings(), pipeline=object(), sink=_NoSink())
