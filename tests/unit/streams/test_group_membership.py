"""DG_GROUP_INSTANCE_ID: static group membership for workers (a restarted worker takes its
partitions back at once); unset, the group membership stays dynamic."""
from __future__ import annotations

import pytest

from distillguard.streams.settings import WorkerSettings


class NoSink:
    client = None


@pytest.mark.parametrize("env, expected", [({}, None), ({"DG_GROUP_INSTANCE_ID": "distillguard-worker-7f9c"},
                                                         "distillguard-worker-7f9c")])
def test_the_worker_joins_its_group_under_the_configured_instance_id(monkeypatch, tmp_path, env, expected):
    from distillguard.streams import feedback_follower
    from distillguard.streams.app import worker_app

    monkeypatch.delenv("DG_GROUP_INSTANCE_ID", raising=False)
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    app = worker_app(WorkerSettings(), pipeline=object(), sink=NoSink())
    assert app.conf.consumer_group_instance_id == expected


def test_an_empty_instance_id_is_refused(monkeypatch):
    monkeypatch.setenv("DG_GROUP_INSTANCE_ID", "")
    with pytest.raises(ValueError, match="group_instance_id"):
        WorkerSettings()
