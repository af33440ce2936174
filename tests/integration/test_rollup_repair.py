"""Rollups consistent with events after a kill between an events insert and its views' inserts.

On the real embedded engine (chDB). The in-process tests reproduce the two halves a kill
leaves (events rows no view saw; view rows whose events block was not stored) by detaching
the views; the last test kills a writer process with SIGKILL during its inserts, for real.
chDB allows one open data directory per process: the in-process tests share one client, the
kill test runs its writers and its checker in processes of their own.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink, make_client

from .test_clickhouse_migrations import direct, rollup, row

PER_BUCKET = """
SELECT raw.api_key_id, raw.b, raw.n, ifNull(r.n, 0) FROM (
    SELECT api_key_id, {bucket}(ts) AS b, count() AS n FROM {db}.events GROUP BY api_key_id, b) AS raw
FULL OUTER JOIN (
    SELECT api_key_id, bucket AS b, toUInt64(countMerge(events)) AS n FROM {db}.{table} GROUP BY api_key_id, b
) AS r USING (api_key_id, b)
WHERE raw.n != ifNull(r.n, 0)"""


def disagreements(client, db: str) -> dict[str, list]:
    """Per rollup, the (key, bucket) pairs whose countMerge differs from count() over events."""
    return {table: client.query(PER_BUCKET.format(db=db, table=table, bucket=bucket),
                                settings={"join_use_nulls": 1}).result_rows
            for table, bucket in (("key_minute", "toStartOfMinute"), ("key_hour", "toStartOfHour"))}


def write(sink: ClickHouseSink, offsets: range, keys: int = 5) -> None:
    for i in offsets:
        sink.add(row(i, key=f"k{i % keys}"), partition=0, offset=i, topic="t")
    sink.flush()


def without_views(client, db: str):
    """Inserts made in this block reach events only, as when a kill lands between the events
    insert and its views' inserts."""
    class Detached:
        def __enter__(self):
            for view in ("key_minute_mv", "key_hour_mv"):
                client.command(f"DETACH TABLE {db}.{view}")

        def __exit__(self, *exc):
            for view in ("key_minute_mv", "key_hour_mv"):
                client.command(f"ATTACH TABLE {db}.{view}")
    return Detached()


def test_events_no_view_saw_are_rolled_up_on_start(client, settings):
    db = settings.database
    sink = ClickHouseSink(settings, client=client)
    write(sink, range(0, 300))
    with without_views(client, db):
        write(sink, range(300, 420))  # rows in events, none in the rollups: the kill's leftovers
    assert disagreements(client, db)["key_minute"]  # the inconsistency the fault run found

    restarted = ClickHouseSink(settings, client=client)  # what a worker does on start

    assert disagreements(client, db) == {"key_minute": [], "key_hour": []}
    # every aggregate, not only the count, equals a GROUP BY over the raw rows
    assert rollup(client, db, "key_minute") == direct(client, db, "toStartOfMinute")
    assert rollup(client, db, "key_hour") == direct(client, db, "toStartOfHour")
    assert restarted.rollup_check.repaired["key_minute"] > 0
    assert client.query(f"SELECT count() FROM {db}.rollup_repairs").result_rows[0][0] == \
        restarted.rollup_check.total_repaired
    # the next start has nothing new to look at
    assert ClickHouseSink(settings, client=client).rollup_check.total_repaired == 0


def test_view_rows_of_an_events_block_stored_twice_are_rebuilt(client, settings):
    """The other half: rollup rows of a block whose events insert was not stored, and the
    block re-sent (with other slices, so other dedup tokens): the rollups count it twice."""
    db = settings.database
    sink = ClickHouseSink(settings, client=client)
    write(sink, range(0, 200))
    client.command(f"INSERT INTO {db}.key_minute SELECT * FROM {db}.key_minute")  # the views' half, again
    client.command(f"INSERT INTO {db}.key_hour SELECT * FROM {db}.key_hour",
                   settings={"insert_deduplicate": 0})
    write(sink, range(200, 260))  # events of the same buckets arrive after
    assert disagreements(client, db)["key_hour"]

    ClickHouseSink(settings, client=client)

    assert disagreements(client, db) == {"key_minute": [], "key_hour": []}
    assert rollup(client, db, "key_hour") == direct(client, db, "toStartOfHour")


def test_the_check_reads_only_rows_inserted_since_the_last_one(client, settings):
    db = settings.database
    day = settings.model_copy(update={"rollup_check_max_lookback_s": 86400.0})
    sink = ClickHouseSink(day, client=client)
    write(sink, range(0, 50))
    first = ClickHouseSink(day, client=client).rollup_check  # verified up to row 49
    with without_views(client, db):
        # a disagreement in an upgraded database's distant past, never checked ...
        client.command(f"INSERT INTO {db}.events (ts, event_id, api_key_id, ingested_at) "
                       f"VALUES (now64(3) - INTERVAL 40 DAY, 'old', 'k-old', now64(3) - INTERVAL 30 DAY)")
        write(sink, range(50, 60))  # ... and a recent one

    check = ClickHouseSink(day, client=client).rollup_check

    # the check started where the previous one ended, not at the beginning of the table ...
    assert first.verified_to is not None and check.checked_from == first.verified_to
    assert check.total_repaired > 0
    # ... and never reads further back than the lookback
    left = disagreements(client, db)
    assert [r[0] for r in left["key_minute"]] == ["k-old"]
    assert [r[0] for r in left["key_hour"]] == ["k-old"]


def test_a_running_sink_checks_what_it_stored_but_the_last_minute(client, settings):
    db = settings.database
    sink = ClickHouseSink(settings, client=client)
    write(sink, range(0, 100))
    with without_views(client, db):
        # a row stored 10 minutes ago (by a process killed in its views' insert since), and
        # rows stored now, whose views a writer running beside this one may not have reached
        client.command(f"INSERT INTO {db}.events (ts, event_id, api_key_id, ingested_at) "
                       f"VALUES (now64(3) - INTERVAL 1 DAY, 'e-settled', 'k-settled', now64(3) - INTERVAL 10 MINUTE)")
        write(sink, range(100, 120))

    check = sink.check_rollups(settle_s=60.0)  # what the worker's timer does

    left = {key for rows in disagreements(client, db).values() for key, *_ in rows}
    assert check.total_repaired > 0 and "k-settled" not in left
    assert left == {f"k{i}" for i in range(5)}  # the last minute's rows: the next check's
    assert sink.check_rollups(settle_s=0.0).total_repaired > 0
    assert disagreements(client, db) == {"key_minute": [], "key_hour": []}


def test_a_check_that_fails_does_not_stop_the_sink_and_runs_again_next_start(client, settings, caplog):
    db = settings.database
    sink = ClickHouseSink(settings, client=client)
    with without_views(client, db):
        write(sink, range(0, 40))
    client.command(f"RENAME TABLE {db}.rollup_checks TO {db}.rollup_checks_away")  # the check fails

    failed = ClickHouseSink(settings, client=client)

    assert failed.rollup_check is None
    assert "rollup check failed" in caplog.text
    write(failed, range(40, 60))  # events are still stored
    assert client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] == 60
    client.command(f"RENAME TABLE {db}.rollup_checks_away TO {db}.rollup_checks")
    assert ClickHouseSink(settings, client=client).rollup_check.total_repaired > 0
    assert disagreements(client, db) == {"key_minute": [], "key_hour": []}


# -- a real kill -------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from distillguard.sinks.clickhouse import ClickHouseSettings, ClickHouseSink
    from tests.integration.test_clickhouse_migrations import row

    batch = 20_000  # the worker's default DG_CLICKHOUSE_BATCH_ROWS: one insert takes ~1 s here
    settings = ClickHouseSettings(data_dir=sys.argv[1], database="killed", batch_rows=batch)
    sink = ClickHouseSink(settings)  # checks (and repairs) the rollups, as a worker's sink does
    total = int(sys.argv[2])
    mark = sink.watermarks().get(("t", 0), -1)
    for start in range(mark + 1, total, batch):  # the watermark skips what is stored
        for i in range(start, min(start + batch, total)):
            sink.add(row(i, key=f"k{i % 37}"), partition=0, offset=i, topic="t")
        print("insert", flush=True)
        sink.flush()
    print("done", flush=True)
""")

CHECKER = textwrap.dedent("""
    import json, sys
    from distillguard.sinks.clickhouse import ClickHouseSettings, make_client
    from tests.integration.test_rollup_repair import disagreements
    client = make_client(ClickHouseSettings(data_dir=sys.argv[1]))
    events = client.query("SELECT count() FROM killed.events").result_rows[0][0]
    print(json.dumps({"events": events, "disagree": {t: len(r) for t, r in disagreements(client, "killed").items()}}))
""")


def run_python(code: str, *args: str, **kw) -> subprocess.Popen:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=root, stdout=subprocess.PIPE, text=True, **kw)


def test_sigkill_during_inserts_then_start_rolls_up_every_event(tmp_path):
    """A writer process is killed with SIGKILL at random moments of its insert loop, then
    restarted (it resumes from its watermark, as a worker does), several times. The start
    after the last kill leaves every (key, minute) and (key, hour) count equal to events'."""
    total, kills = 400_000, 8
    rng = random.Random(17)
    data = str(tmp_path / "chdb")
    for k in range(kills):
        # Each killed run is given rows of its own to insert (its ceiling is the next share of
        # the total): a run that finished everything before its kill (seen on a quiet machine,
        # where an insert takes a fraction of a second) left the next runs nothing to kill.
        writer = run_python(WRITER, data, str((k + 1) * total // (kills + 1)))
        assert writer.stdout.readline().strip() == "insert"
        time.sleep(rng.uniform(0.0, 1.0))  # somewhere in the insert (and its views' inserts)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(60)
    writer = run_python(WRITER, data, str(total))
    lines = writer.communicate(timeout=300)[0].split()
    assert writer.returncode == 0 and lines[-1] == "done"

    report = json.loads(run_python(CHECKER, data).communicate(timeout=120)[0])
    assert report == {"events": total, "disagree": {"key_minute": 0, "key_hour": 0}}
