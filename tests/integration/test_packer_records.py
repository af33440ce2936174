"""A record bigger than an envelope, through ``distillguard packer`` to a worker with
DG_READ_PACKED, on the embedded broker. Apart from test_packer.py: no deadline, so it runs
beside other tests, not in the serial part (tests/integration/conftest.py SERIAL_MODULES)."""
from __future__ import annotations

import json

from distillguard.devtools.demo_traffic import demo_events, iter_encoded

from .conftest import wait_for, wait_rows
from .test_packer import PackerProcess, _packer_env


def test_a_record_bigger_than_an_envelope_reaches_the_worker_whole(pipeline, tmp_path):
    # ~880 KB: over the ~670 KB an envelope of DG_PACKER_MAX_BYTES carries; the embedded broker
    # takes its ~1.2 MB envelope alone, so the worker sees the record whole and treats it as the
    # direct path does (over the event size limit: dead-lettered whole, as "record too large";
    # cut to a prefix, it was "too big to pack" with 670 KB of it).
    events = demo_events(seed=29, users=8, campaign_events=0)[:30]
    big = dict(events[7], event_id="big-record", prompt="tell me about rivers " * 41_800)
    records = list(iter_encoded(events))
    records.insert(15, (big["api_key_id"].encode(), json.dumps(big).encode()))
    assert 850_000 < len(records[15][1]) < 900_000  # (DG_DLQ_MAX_BYTES keeps it whole)
    packed, env = _packer_env(pipeline)
    worker = pipeline.start_worker(DG_READ_PACKED="true", **packed)
    packer = PackerProcess(env, tmp_path / "packer.log").start()
    try:
        pipeline.produce(records)
        counts = wait_rows(worker, len(events), timeout=120)
        wait_for(lambda: worker.get("/query/tables")["dlq"] == 1, "the big record's dlq row")
    finally:
        packer.stop()
    assert counts["events"] == len(events)
    (dead,) = pipeline.consume_all(pipeline.settings.dlq_topic)
    assert dead.value() == records[15][1]
    assert dict(dead.headers())["dg.reason"].startswith(b"record too large")
