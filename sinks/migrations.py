"""Versioned ClickHouse schema, applied on start-up (idempotent, chDB and server alike).

Each migration is a list of statements with ``{db}`` and ``{ttl_days}`` placeholders. A
migration is recorded in ``schema_migrations`` once all its statements succeeded; every
statement is written to be safe to run again (``IF NOT EXISTS``), so a crash half-way
through a migration is repaired by the next start.

TTL note: ClickHouse drops rows older than the TTL *at insert time*. Replaying old history
(the benchmark streams are months old) with a short TTL silently stores nothing, so the
default is long (``DG_CLICKHOUSE_EVENTS_TTL_DAYS``, 400 days).
"""
from __future__ import annotations

from dataclasses import dataclass

# Insert deduplication on non-replicated tables needs an explicit window, on the raw table
# and on every rollup target (a deduplicated raw insert still fires the MVs otherwise).
DEDUP = "non_replicated_deduplication_window = 1000"


_ALERT_COLUMNS = ("alert_id, ts, entity_type, entity_id, api_key_ids, score, severity, severity_rank, reasons, "
                  "events_seen, detector, version")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _rollup(name: str, bucket: str) -> tuple[str, str]:
    table = f"""
CREATE TABLE IF NOT EXISTS {{db}}.{name} (
    bucket DateTime('UTC'),
    org_id LowCardinality(String),
    api_key_id String,
    account_id SimpleAggregateFunction(any, String),
    events AggregateFunction(count),
    score_max AggregateFunction(max, Float32),
    score_avg AggregateFunction(avg, Float32),
    style_avg AggregateFunction(avg, Float32),
    topics AggregateFunction(uniq, UInt16),
    templates AggregateFunction(uniq, UInt64),
    input_tokens AggregateFunction(sum, UInt64),
    output_tokens AggregateFunction(sum, UInt64),
    alerting_max AggregateFunction(max, UInt8)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (api_key_id, bucket, org_id)
TTL bucket + INTERVAL {{ttl_days}} DAY
SETTINGS {DEDUP}"""
    view = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{name}_mv TO {{db}}.{name} AS
{rollup_select(bucket)}"""
    return table, view


# Each rollup table and the function that buckets an event's ts into it.
ROLLUPS: tuple[tuple[str, str], ...] = (("key_minute", "toStartOfMinute"), ("key_hour", "toStartOfHour"))


def rollup_select(bucket: str, where: str = "") -> str:
    """The aggregation a rollup's materialized view applies to inserted events rows.

    Shared with :mod:`distillguard.sinks.rollups`, which rebuilds rollup rows from ``events``
    with the very same -State functions (a repaired row must merge like one the view wrote).
    """
    return f"""SELECT {bucket}(ts) AS bucket, org_id, api_key_id,
       any(account_id) AS account_id,
       countState() AS events,
       maxState(score) AS score_max, avgState(score) AS score_avg,
       avgState(extraction_style) AS style_avg,
       uniqState(topic_bucket) AS topics, uniqState(template_hash) AS templates,
       sumState(toUInt64(input_tokens)) AS input_tokens, sumState(toUInt64(output_tokens)) AS output_tokens,
       maxState(alerting) AS alerting_max
FROM {{db}}.events{where}
GROUP BY bucket, org_id, api_key_id"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events, rollups, alerts, dead letters", (
        f"""
CREATE TABLE IF NOT EXISTS {{db}}.events (
    ts DateTime64(3, 'UTC'),
    event_id String,
    api_key_id String,
    account_id String,
    org_id LowCardinality(String),
    model LowCardinality(String),
    endpoint LowCardinality(String),
    asn UInt32,
    country LowCardinality(String),
    prompt_chars UInt32,
    input_tokens UInt32,
    output_tokens UInt32,
    status UInt16,
    latency_ms UInt32,
    score Float32,
    extraction_style Float32,
    topic_bucket UInt16,
    template_hash UInt64,
    alerting UInt8,
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (api_key_id, ts)
TTL toDateTime(ts) + INTERVAL {{ttl_days}} DAY
SETTINGS {DEDUP}""",
        *(statement for name, bucket in ROLLUPS for statement in _rollup(name, bucket)),
        """
CREATE TABLE IF NOT EXISTS {db}.alerts (
    alert_id String,
    ts DateTime64(3, 'UTC'),
    entity_type LowCardinality(String),
    entity_id String,
    api_key_ids Array(String),
    score Float64,
    severity LowCardinality(String),
    severity_rank UInt8,
    reasons String,
    events_seen UInt64,
    detector LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY alert_id""",
        """
CREATE TABLE IF NOT EXISTS {db}.dlq (
    failed_at DateTime64(3, 'UTC'),
    reason String,
    reason_class LowCardinality(String),
    topic LowCardinality(String),
    partition Int32,
    offset Int64,
    size UInt32
) ENGINE = MergeTree
ORDER BY (failed_at, topic, partition, offset)
TTL toDateTime(failed_at) + INTERVAL {ttl_days} DAY""",
    )),
    # Dashboards: every version of every alert (the incident timeline; ``alerts`` keeps only
    # the latest), an ``incidents`` view over it, and skip indexes for the by-org filters.
    Migration(2, "alert history, incidents view, org indexes", (
        """
CREATE TABLE IF NOT EXISTS {db}.alert_history (
    alert_id String,
    ts DateTime64(3, 'UTC'),
    entity_type LowCardinality(String),
    entity_id String,
    api_key_ids Array(String),
    score Float64,
    severity LowCardinality(String),
    severity_rank UInt8,
    reasons String,
    events_seen UInt64,
    detector LowCardinality(String),
    version UInt64,
    received_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (alert_id, version)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY""",
        f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.alert_history_mv TO {{db}}.alert_history AS
SELECT {_ALERT_COLUMNS} FROM {{db}}.alerts""",
        # Backfill from the versions ``alerts`` still holds; safe to re-run (a repeated
        # version is harmless: readers take distinct versions).
        f"""
INSERT INTO {{db}}.alert_history ({_ALERT_COLUMNS})
SELECT {_ALERT_COLUMNS} FROM {{db}}.alerts
WHERE alert_id NOT IN (SELECT alert_id FROM {{db}}.alert_history)""",
        """
CREATE VIEW IF NOT EXISTS {db}.incidents AS
SELECT alert_id AS incident_id, any(entity_type) AS entity_type, any(entity_id) AS entity_id,
       argMax(api_key_ids, version) AS api_key_ids, argMax(severity, version) AS severity,
       max(severity_rank) AS severity_rank, argMax(score, version) AS score,
       argMax(reasons, version) AS reasons, max(events_seen) AS events_seen,
       argMax(detector, version) AS detector, min(ts) AS opened_at, max(ts) AS updated_at,
       uniqExact(version) AS updates
FROM {db}.alert_history
GROUP BY alert_id""",
        "ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS org_idx org_id TYPE set(1000) GRANULARITY 4",
        "ALTER TABLE {db}.key_minute ADD INDEX IF NOT EXISTS org_idx org_id TYPE set(1000) GRANULARITY 4",
        "ALTER TABLE {db}.key_hour ADD INDEX IF NOT EXISTS org_idx org_id TYPE set(1000) GRANULARITY 4",
    )),
    # On-call feedback (ack / resolve / false positive) for threshold tuning. Every detector
    # worker reads the whole feedback topic, so the same record is inserted more than once:
    # ReplacingMergeTree on its id keeps one (read with FINAL).
    Migration(3, "feedback", (
        """
CREATE TABLE IF NOT EXISTS {db}.feedback (
    feedback_id String,
    ts DateTime64(3, 'UTC'),
    entity_type LowCardinality(String),
    entity_id String,
    action LowCardinality(String),
    reason String,
    actor String,
    received_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (entity_type, entity_id, feedback_id)""",
    )),
    # The key's detector signals after each event (what the score is made of), so analysts
    # can chart and query them per key/org/time. Old rows read the defaults (0).
    Migration(4, "per-event detector signals", tuple(
        f"ALTER TABLE {{db}}.events ADD COLUMN IF NOT EXISTS {column} Float32 DEFAULT 0 AFTER alerting"
        for column in ("topic_novelty", "template_repetition", "follow_up_share", "output_yield", "style_share")
    )),
    # The key's sequential extraction-rate evidence after each event (the CUSUM that pages
    # diluted, low-and-slow campaigns): on-call charts it climbing towards its threshold.
    Migration(5, "per-event extraction evidence", (
        "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS extraction_evidence Float32 DEFAULT 0 AFTER style_share",
    )),
    # Rollups consistent with raw rows after a kill: a process killed between an events insert
    # and its views' inserts leaves events rows no rollup counts (seen: 53 rows, 1 kill in 2).
    # sinks/rollups.py compares the two for the rows inserted since the last check (found by
    # ``ingested_at``, which the minmax index lets it find without reading the whole table),
    # rebuilds the (key, bucket) rows that disagree and remembers how far it has verified.
    Migration(6, "rollup checks and repairs", (
        "ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS ingested_idx ingested_at TYPE minmax GRANULARITY 1",
        """
CREATE TABLE IF NOT EXISTS {db}.rollup_checks (
    verified_to DateTime64(3, 'UTC'),
    checked_from DateTime64(3, 'UTC'),
    repaired UInt64,
    checked_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY verified_to
TTL toDateTime(checked_at) + INTERVAL {ttl_days} DAY""",
        # The (rollup, key, bucket) rows a check found wrong, per check: what the repair
        # rebuilds (kept inside ClickHouse: keys never travel back as SQL literals) and the
        # audit trail of what was repaired.
        """
CREATE TABLE IF NOT EXISTS {db}.rollup_repairs (
    check_id String,
    rollup LowCardinality(String),
    api_key_id String,
    bucket DateTime('UTC'),
    raw_events UInt64,
    rollup_events Int64,
    found_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (check_id, rollup, api_key_id, bucket)
TTL toDateTime(found_at) + INTERVAL {ttl_days} DAY""",
    )),
    # The input log's epoch beside each stored offset: a broker that comes back empty or a
    # recreated topic starts offsets at 0 again, and (epoch, offset) keeps positions ordered
    # (see streams/epochs.py). Rows stored before read epoch 0.
    Migration(7, "input partition epochs", (
        "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS kafka_epoch UInt32 DEFAULT 0 AFTER kafka_partition",
        "ALTER TABLE {db}.dlq ADD COLUMN IF NOT EXISTS epoch UInt32 DEFAULT 0 AFTER partition",
    )),
    # Exculpated detections (contracts.alert.is_exculpated): incidents a detector holds at info
    # on exculpatory evidence (a real product's traffic, one mature account's own incident).
    # Recorded here instead of sent on distill.alerts (DG_SEND_EXCULPATED sends them too); the
    # same incident escalating later is an alert like any other. The columns of ``alerts``.
    Migration(8, "exculpated detections", (
        """
CREATE TABLE IF NOT EXISTS {db}.exculpated AS {db}.alerts
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY alert_id
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY""",
    )),
)

LATEST = MIGRATIONS[-1].version
