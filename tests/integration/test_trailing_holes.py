"""Records lost at a partition's end, where no later record reveals the hole.

The worker sees a hole when a record beyond it arrives (test_faults); the last records of a
partition that Faust never hands over are revealed by nothing. Seen after broker restarts:
one partition stayed behind until /health reported it stalled (CI, test_faults and
test_partition_epochs). The worker reads them back once the partition has waited
DG_REFILL_AFTER_S with nothing handed over.
"""
from __future__ import annotations

from distillguard.devtools.demo_traffic import demo_events, iter_encoded

from .conftest import counters_of, metric, wait_rows


def test_the_last_records_the_consumer_skips_are_read_back(pipeline, tmp_path):
    records = list(iter_encoded(demo_events(seed=7, users=30, campaign_events=100)))
    first, last = records[:200], records[200:203]
    skip = tmp_path / "skip-records"
    worker = pipeline.start_worker(DG_CONSUMER_SKIP_FAULT_FILE=str(skip), DG_REFILL_AFTER_S="2")
    pipeline.produce(first)
    wait_rows(worker, len(first))
    skip.touch()
    pipeline.produce(last)  # all three skipped, and nothing comes after them
    tables = wait_rows(worker, len(first) + len(last), timeout=60)
    assert not skip.exists()  # the skip happened
    assert metric(worker, "distillguard_consumer_holes_total") == len(last)
    assert tables["events"] == tables["key_minute_events"] == len(first) + len(last)  # each once
    assert counters_of(worker)["processed"] == len(first) + len(last)
    partitions = worker.get("/health")["partitions"]
    assert sum(state["next_offset"] or 0 for state in partitions.values()) == len(first) + len(last)
    assert not any(state["stalled"] for state in partitions.values())
