"""``distillguard packer`` in front of a worker with DG_READ_PACKED, on the embedded broker: the same
rows, dead letters and alerts as the direct path, and a packer killed twice (once between delivering
envelopes and committing their input offsets) loses nothing and stores nothing twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from distillguard.devtools.demo_traffic import demo_events, iter_encoded

from .conftest import wait_for, wait_rows
from .test_replay_equivalence import _assert_same_cluster_incidents, _hydras, _incidents, _replay


class PackerProcess:
    """``distillguard packer`` in a child process, configured through ``DG_*`` env."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self) -> "PackerProcess":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "packer"],
                                         env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def _packer_env(pipeline, **extra) -> tuple[dict, dict]:
    """The packed topic's settings (for the worker too) and the packer's whole env."""
    packed = {"DG_PACKED_TOPIC": f"packed-{uuid.uuid4().hex[:8]}", "DG_PACKER_MAX_EVENTS": "100"}
    return packed, {**pipeline.env, **packed, "DG_KAFKA_BOOTSTRAP": pipeline.broker.bootstrap,
                    "DG_PACKER_GROUP_ID": f"packer-{uuid.uuid4().hex[:8]}", **extra}


def test_packed_path_stores_what_the_direct_path_stores_through_packer_kills(pipeline, tmp_path):
    events = demo_events(seed=23, users=60, campaign_events=700)
    replayed = _replay(events, tmp_path, ("{broken line",))
    records = list(iter_encoded(events))
    records.insert(len(records) // 4, (b"k-broken", b"{broken line"))
    first, second = records[: len(records) // 2], records[len(records) // 2:]

    crash = tmp_path / "packer-crash"
    crash.touch()  # the first packer dies after delivering its first envelopes, before its commit
    packed, env = _packer_env(pipeline, DG_PACKER_CRASH_FAULT_FILE=str(crash))
    worker = pipeline.start_worker(DG_READ_PACKED="true", **packed)
    packers = []
    try:
        pipeline.produce(first)
        packers.append(PackerProcess(env, tmp_path / "packer-0.log").start())
        assert packers[0].proc.wait(timeout=60) == 70 and not crash.exists()
        packers.append(PackerProcess(env, tmp_path / "packer-1.log").start())
        wait_for(lambda: worker.get("/query/tables")["events"] >= len(first) // 2, "half the first part stored")
        packers[1].kill()  # SIGKILL mid-stream: whatever it had open or uncommitted is packed again
        pipeline.produce(second)
        packers.append(PackerProcess(env, tmp_path / "packer-2.log").start())
        counts = wait_rows(worker, len(events), timeout=180)
    finally:
        for packer in packers:
            packer.stop()

    # Every event stored once (rows and both rollups), the bad record dead-lettered once.
    assert (counts["events"], counts["key_minute_events"], counts["key_hour_events"], counts["dlq"]) == (
        len(events), len(events), len(events), 1)
    dead = pipeline.consume_all(pipeline.settings.dlq_topic)
    headers = [dict(m.headers()) for m in dead]
    # (the dead letter names the record's place in llm.requests, as on the direct path)
    assert {(h["dg.source.topic"], h["dg.source.offset"]) for h in headers} == {
        (pipeline.settings.requests_topic.encode(), str(_offset_of(pipeline, b"k-broken")).encode())}
    assert {m.value() for m in dead} == {b"{broken line"}
    assert _incidents(pipeline.alerts(expect=len(replayed))) == _incidents(replayed)


def _offset_of(pipeline, key: bytes) -> int:
    """Where the record with ``key`` sits in its requests partition."""
    found = [m for m in pipeline.consume_all(pipeline.settings.requests_topic) if m.key() == key]
    assert len(found) == 1
    return found[0].offset()


def test_packed_path_raises_replays_cluster_incidents(pipeline, tmp_path):
    # Link records made by the batch step reach the cluster agent as the direct path's do: the
    # same hydra incidents as replay, each naming its campaign.
    events, hydras = _hydras()
    replayed = _replay(events, tmp_path)
    packed, env = _packer_env(pipeline)
    pipeline.start_worker(DG_READ_PACKED="true", **packed)
    packer = PackerProcess(env, tmp_path / "packer.log").start()
    try:
        pipeline.produce(list(iter_encoded(events)))
        _assert_same_cluster_incidents(pipeline, replayed, hydras)
    finally:
        packer.stop()
