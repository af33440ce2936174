"""Rollups consistent with the raw rows they summarise, after any kill.

An ``events`` insert and the inserts its materialized views (``key_minute``, ``key_hour``)
make are not one transaction: a process killed between them leaves events rows that no
rollup counts (the fault run: 53 rows in 1 kill of 2), and the sink's watermark never sends
those rows again. (A kill the other way round, rollup rows for an events block that was not
committed, makes the re-sent block count twice.) So on start the sink checks the rows
inserted since the last verified point and rebuilds the rollup rows that disagree:

1. ``since`` = the last verified point (``rollup_checks``), ``upto`` = the newest
   ``events.ingested_at`` now. Only events ingested in between are looked at: a start on a
   400-day table reads the last run's rows, not the table (``ingested_at`` has a minmax index).
   A database never checked (upgraded) looks back at most ``max_lookback_s``.
2. For each rollup, the (key, bucket) pairs those rows fall in whose ``count()`` in events
   differs from ``countMerge(events)`` in the rollup are written to ``rollup_repairs``
   (inside ClickHouse: keys are client-controlled and never travel back as SQL literals).
3. Those rollup rows are deleted and re-inserted from events with the very aggregation the
   view uses (:func:`~distillguard.sinks.migrations.rollup_select`), with insert
   de-duplication off (a rebuilt block equal to an earlier one must not be dropped).
4. ``upto`` is recorded as verified. A kill anywhere before that leaves the point where it
   was, so the next start finds the same buckets wrong and rebuilds them again.

Run when the sink opens, before it writes anything: with the embedded chDB the process owns
the database, so nothing inserts while it runs. A running worker also checks every
``DG_CLICKHOUSE_ROLLUP_CHECK_INTERVAL_S`` between its flushes, leaving out the last minute's
rows, so that the check on a start after a kill reads one interval's rows, not the days
since the last start. With a shared ClickHouse server a worker starting while
another one writes the same key's bucket can race the rebuild (the counts of that bucket are
then wrong until the next check): keys are partitioned, so only during a rebalance.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .migrations import ROLLUPS, rollup_select

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollupCheck:
    """What one check looked at and rebuilt."""

    checked_from: datetime | None  # None: nothing to check (no events ingested since)
    verified_to: datetime | None
    repaired: dict[str, int] = field(default_factory=dict)  # rollup -> (key, bucket) rows rebuilt

    @property
    def total_repaired(self) -> int:
        return sum(self.repaired.values())


def check_rollups(client, db: str, *, max_lookback_s: float, settle_s: float = 0.0) -> RollupCheck:
    """Verify the rollups against ``events`` since the last check; rebuild what disagrees.

    ``settle_s``: leave out rows ingested less than this long ago (the next check reads
    them). A check while other processes write uses it, so that an insert whose views are
    still running is not taken for one a kill cut short.
    """
    newest, rows, now = client.query(
        f"SELECT max(ingested_at), count(), now64(3, 'UTC') FROM {db}.events").result_rows[0]
    if not rows:
        return RollupCheck(None, None)
    upto = min(newest, now - timedelta(seconds=settle_s)) if settle_s else newest
    verified = client.query(f"SELECT max(verified_to), count() FROM {db}.rollup_checks").result_rows[0]
    since = upto - timedelta(seconds=max_lookback_s)
    if verified[1]:
        since = max(since, verified[0])
    if verified[1] and verified[0] >= upto:
        return RollupCheck(None, None)  # nothing ingested since the last check
    check_id = uuid.uuid4().hex
    repaired = {}
    for table, bucket in ROLLUPS:
        found = _find_disagreements(client, db, table, bucket, check_id, since, upto)
        if found:
            _rebuild(client, db, table, bucket, check_id)
        repaired[table] = found
    client.insert(f"{db}.rollup_checks", [[upto, since, sum(repaired.values())]],
                  column_names=["verified_to", "checked_from", "repaired"])
    result = RollupCheck(since, upto, repaired)
    if result.total_repaired:
        log.warning("rollups disagreed with events (a kill between an events insert and its views'?): "
                    "rebuilt %s (key, bucket) rows from events ingested %s..%s", repaired, since, upto)
    return result


def _time(value: datetime) -> str:
    # (a DateTime64 literal built from a value ClickHouse returned: no client input)
    return f"toDateTime64('{value.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"


def _find_disagreements(client, db: str, table: str, bucket: str, check_id: str,
                        since: datetime, upto: datetime) -> int:
    """Write the (key, bucket) pairs of ``table`` that disagree with events to rollup_repairs."""
    touched = (f"SELECT DISTINCT api_key_id, {bucket}(ts) FROM {db}.events "
               f"WHERE ingested_at >= {_time(since)} AND ingested_at <= {_time(upto)}")
    client.command(f"""
        INSERT INTO {db}.rollup_repairs (check_id, rollup, api_key_id, bucket, raw_events, rollup_events)
        SELECT '{check_id}', '{table}', api_key_id, bucket, raw.events, ifNull(rolled.events, 0)
        FROM (
            SELECT api_key_id, {bucket}(ts) AS bucket, count() AS events FROM {db}.events
            WHERE (api_key_id, {bucket}(ts)) IN ({touched})
            GROUP BY api_key_id, bucket
        ) AS raw
        LEFT JOIN (
            SELECT api_key_id, bucket, toInt64(countMerge(events)) AS events FROM {db}.{table}
            WHERE (api_key_id, bucket) IN ({touched})
            GROUP BY api_key_id, bucket
        ) AS rolled USING (api_key_id, bucket)
        WHERE raw.events != ifNull(rolled.events, 0)""", settings={"join_use_nulls": 1})
    return int(client.query(f"SELECT count() FROM {db}.rollup_repairs "
                            f"WHERE check_id = '{check_id}' AND rollup = '{table}'").result_rows[0][0])


def _rebuild(client, db: str, table: str, bucket: str, check_id: str) -> None:
    """Replace ``table``'s rows of the buckets the check found with aggregates of events."""
    wrong = (f"SELECT api_key_id, bucket FROM {db}.rollup_repairs "
             f"WHERE check_id = '{check_id}' AND rollup = '{table}'")
    client.command(f"DELETE FROM {db}.{table} WHERE (api_key_id, bucket) IN ({wrong})",
                   settings={"lightweight_deletes_sync": 2})
    where = f"\nWHERE (api_key_id, {bucket}(ts)) IN ({wrong})"
    columns = ("bucket, org_id, api_key_id, account_id, events, score_max, score_avg, style_avg, topics, "
               "templates, input_tokens, output_tokens, alerting_max")  # the select's order
    client.command(f"INSERT INTO {db}.{table} ({columns}) " + rollup_select(bucket, where).format(db=db),
                   settings={"insert_deduplicate": 0})
