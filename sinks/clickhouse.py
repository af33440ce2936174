"""The ClickHouse sink: one client factory, migrations on start-up, a batched idempotent writer.

Embedded chDB by default (a directory under the data dir, owned by this process: chDB
allows one process per directory), a ClickHouse server over HTTP when
``DG_CLICKHOUSE_URL`` / ``CLICKHOUSE_URL`` is set. The same code writes to both.

Writer contract (quix-streams style): ``add*`` buffers, ``flush`` writes, and when the
buffer is full because ClickHouse is failing, ``add`` raises :class:`SinkBackpressure`
with ``retry_after`` instead of retrying or growing without bound. Exactly-once rows across
worker crashes: rows carry their Kafka position; the sink drops rows at or below the
highest offset already stored for that partition (its watermark), and every insert carries
a deduplication token built from its positions, so re-sending a batch changes nothing.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from distillguard.models.pipeline import ROW_COLUMNS

from distillguard.streams.epochs import EPOCH_SHIFT, StoredRecord, epoch_of, offset_of

from .errors import SchemaError, SinkBackpressure, SinkUnavailable
from .migrations import LATEST, MIGRATIONS

log = logging.getLogger(__name__)

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}


class ClickHouseSettings(BaseSettings):
    """ClickHouse connection and batching (env prefix ``DG_CLICKHOUSE_``)."""

    model_config = SettingsConfigDict(env_prefix="DG_CLICKHOUSE_", frozen=True, extra="ignore",
                                      populate_by_name=True)

    url: str | None = Field(None, validation_alias=AliasChoices("DG_CLICKHOUSE_URL", "CLICKHOUSE_URL"))
    user: str | None = None
    password: SecretStr | None = None
    database: str = "distillguard"
    data_dir: Path = Field(Path("var"), validation_alias=AliasChoices("DG_DATA_DIR", "DG_CLICKHOUSE_DATA_DIR"))
    batch_rows: int = Field(20_000, ge=1)
    batch_age_s: float = Field(1.0, gt=0)
    max_buffered_rows: int = Field(200_000, ge=1)
    retry_after_s: float = Field(1.0, gt=0)
    events_ttl_days: int = Field(400, ge=1)
    # Fault injection for the outage tests: while this file exists every write fails as if
    # ClickHouse refused the connection (reads and migrations are unaffected). Unset in production.
    fault_file: Path | None = None

    @property
    def embedded(self) -> bool:
        return not self.url

    def describe(self) -> str:
        """Where the sink writes, without credentials (for logs)."""
        if self.embedded:
            return f"chdb://{(Path(self.data_dir) / 'clickhouse').resolve()}"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def make_client(settings: ClickHouseSettings):
    """The one place a ClickHouse client is created."""
    import clickhouse_connect

    try:
        if settings.embedded:
            path = (Path(settings.data_dir) / "clickhouse").resolve()
            path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=f"chdb://{path}")
        parts = urlsplit(settings.url)
        password = settings.password.get_secret_value() if settings.password else (parts.password or "")
        return clickhouse_connect.get_client(
            host=parts.hostname, port=parts.port or (8443 if parts.scheme == "https" else 8123),
            secure=parts.scheme == "https", username=settings.user or parts.username or "default",
            password=password, connect_timeout=10, send_receive_timeout=60)
    except Exception as exc:  # noqa: BLE001 - one typed error for every backend failure
        raise SinkUnavailable(f"cannot open ClickHouse at {settings.describe()}: {exc}") from None


def apply_migrations(client, settings: ClickHouseSettings) -> list[int]:
    """Bring the schema to :data:`LATEST`; returns the versions applied now."""
    db = settings.database
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
                   f"applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version")
    done = {row[0] for row in client.query(f"SELECT version FROM {db}.schema_migrations").result_rows}
    if done and max(done) > LATEST:
        raise SchemaError(f"database schema v{max(done)} is newer than this distillguard (v{LATEST})")
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement.format(db=db, ttl_days=settings.events_ttl_days))
        client.insert(f"{db}.schema_migrations", [[migration.version, migration.name]],
                      column_names=["version", "name"])
        applied.append(migration.version)
    return applied


_ARROW_TYPES = {
    "event_id": pa.string(), "api_key_id": pa.string(), "account_id": pa.string(), "org_id": pa.string(),
    "model": pa.string(), "endpoint": pa.string(), "asn": pa.uint32(), "country": pa.string(),
    "prompt_chars": pa.uint32(), "input_tokens": pa.uint32(), "output_tokens": pa.uint32(),
    "status": pa.uint16(), "latency_ms": pa.uint32(), "score": pa.float32(), "extraction_style": pa.float32(),
    "topic_bucket": pa.uint16(), "template_hash": pa.uint64(), "alerting": pa.uint8(),
    "style_share": pa.float32(), "output_yield": pa.float32(), "follow_up_share": pa.float32(),
    "template_repetition": pa.float32(), "topic_novelty": pa.float32(), "extraction_evidence": pa.float32(),
}


if set(_ARROW_TYPES) | {"ts_ms"} != set(ROW_COLUMNS):  # a feature column without a migration
    raise SchemaError(f"events table columns {sorted(_ARROW_TYPES)} do not match the feature row {ROW_COLUMNS}")
_ROW_SCHEMA = pa.schema([("ts_ms", pa.timestamp("ms", tz="UTC"))] + list(_ARROW_TYPES.items()))
_ROW_NAMES = ["ts"] + list(_ARROW_TYPES)
# Where each row came from: (epoch, offset) is its position (see streams/epochs.py).
_POSITION_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_epoch")


@dataclass
class _Batch:
    topic: str
    partition: int
    rows: list[dict] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


class ClickHouseSink:
    """Buffers feature rows, alerts and dead-letter records; writes them in batches."""

    def __init__(self, settings: ClickHouseSettings | None = None, client=None, *, clock=time.monotonic) -> None:
        self.settings = settings or ClickHouseSettings()
        self.db = self.settings.database
        self.client = client or make_client(self.settings)
        self._clock = clock
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._events: dict[tuple[str, int], _Batch] = {}
        self._alerts: list[dict] = []
        self._dead: list[list] = []
        self._feedback: list[list] = []
        self._buffered = 0
        self._oldest: float | None = None
        self._failing_since: float | None = None
        self.rows_written = 0
        apply_migrations(self.client, self.settings)
        self._watermarks: dict[tuple[str, int], int] = self._read_watermarks()
        # The dead-letter table's own positions: a record re-read after a crash is stored once.
        self._dlq_watermarks: dict[tuple[str, int], int] = self._read_dlq_watermarks()

    # -- positions ---------------------------------------------------------------------
    # Positions are (epoch, offset) packed as in streams.epochs: a partition's watermark is
    # the highest offset of its latest epoch, so a new log (broker restarted empty, topic
    # recreated) starts below nothing stored.
    def _read_watermarks(self) -> dict[tuple[str, int], int]:
        rows = self.client.query(
            f"SELECT kafka_topic, kafka_partition, max(bitShiftLeft(toInt64(kafka_epoch), {EPOCH_SHIFT}) + "
            f"kafka_offset) FROM {self.db}.events WHERE kafka_partition >= 0 "
            f"GROUP BY kafka_topic, kafka_partition").result_rows
        return {(topic, int(part)): int(pos) for topic, part, pos in rows}

    def _read_dlq_watermarks(self) -> dict[tuple[str, int], int]:
        rows = self.client.query(
            f"SELECT topic, partition, max(bitShiftLeft(toInt64(epoch), {EPOCH_SHIFT}) + offset) FROM {self.db}.dlq "
            f"WHERE partition >= 0 GROUP BY topic, partition").result_rows
        return {(topic, int(part)): int(pos) for topic, part, pos in rows}

    def stored_position(self, topic: str, partition: int) -> int:
        """The highest position stored for a partition, feature rows and dead letters (-1: none)."""
        with self._lock:
            return max(self._watermarks.get((topic, partition), -1), self._dlq_watermarks.get((topic, partition), -1))

    def stored_at(self, topic: str, partition: int, pos: int) -> StoredRecord | None:
        """What was stored for the record at one position: its row's event id, a dead letter, or
        nothing (the record was a duplicate event). Compared with the record read now to tell
        a re-read from a new log (see streams.epochs)."""
        epoch, offset = epoch_of(pos), offset_of(pos)
        where = f"kafka_topic = {{t:String}} AND kafka_partition = {int(partition)} AND kafka_epoch = {epoch} " \
                f"AND kafka_offset = {offset}"
        rows = self.client.query(f"SELECT event_id FROM {self.db}.events WHERE {where} LIMIT 1",
                                 parameters={"t": topic}).result_rows
        if rows:
            return StoredRecord("row", rows[0][0])
        rows = self.client.query(f"SELECT 1 FROM {self.db}.dlq WHERE topic = {{t:String}} AND partition = "
                                 f"{int(partition)} AND epoch = {epoch} AND offset = {offset} LIMIT 1",
                                 parameters={"t": topic}).result_rows
        return StoredRecord("dead") if rows else None

    def first_row(self, topic: str, partition: int, epoch: int, from_offset: int = 0) -> tuple[int, str] | None:
        """(offset, event id) of the lowest stored row of one epoch at or after ``from_offset``."""
        rows = self.client.query(
            f"SELECT kafka_offset, event_id FROM {self.db}.events WHERE kafka_topic = {{t:String}} AND "
            f"kafka_partition = {int(partition)} AND kafka_epoch = {int(epoch)} AND kafka_offset >= {int(from_offset)} "
            f"ORDER BY kafka_offset LIMIT 1", parameters={"t": topic}).result_rows
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def stored_event_ids(self, topic: str, partition: int, epoch: int, first: int, end: int) -> dict[int, str]:
        """Offset -> event id of the rows stored for offsets ``first`` .. ``end - 1`` of one epoch."""
        rows = self.client.query(
            f"SELECT kafka_offset, any(event_id) FROM {self.db}.events WHERE kafka_topic = {{t:String}} AND "
            f"kafka_partition = {int(partition)} AND kafka_epoch = {int(epoch)} AND kafka_offset >= {int(first)} "
            f"AND kafka_offset < {int(end)} GROUP BY kafka_offset", parameters={"t": topic}).result_rows
        return {int(offset): event_id for offset, event_id in rows}

    def refresh_watermarks(self) -> None:
        """Re-read stored positions: call when partitions move between workers."""
        marks, dlq_marks = self._read_watermarks(), self._read_dlq_watermarks()
        with self._lock:
            for known, read in ((self._watermarks, marks), (self._dlq_watermarks, dlq_marks)):
                for tp, offset in read.items():
                    if offset > known.get(tp, -1):
                        known[tp] = offset

    def watermarks(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._watermarks)

    # -- add ---------------------------------------------------------------------------
    def _check_room(self) -> None:
        if self._buffered >= self.settings.max_buffered_rows and self._failing_since is not None:
            raise SinkBackpressure(f"ClickHouse failing for {self._clock() - self._failing_since:.0f}s and "
                                   f"{self._buffered} rows buffered", self.settings.retry_after_s)
        if self._buffered >= 2 * self.settings.max_buffered_rows:
            raise SinkBackpressure(f"{self._buffered} rows buffered; flush is behind", self.settings.retry_after_s)

    def _note_added(self) -> None:
        self._buffered += 1
        if self._oldest is None:
            self._oldest = self._clock()

    def add(self, row: dict, partition: int = -1, offset: int = -1, topic: str = "") -> bool:
        """Buffer one feature row; False when it was already stored (at or below the watermark)."""
        with self._lock:
            self._check_room()
            if partition >= 0 and offset <= self._watermarks.get((topic, partition), -1):
                return False
            batch = self._events.get((topic, partition))
            if batch is None:
                batch = self._events[(topic, partition)] = _Batch(topic, partition)
            batch.rows.append(row)
            batch.offsets.append(offset)
            self._note_added()
            return True

    def add_alert(self, alert: dict) -> None:
        with self._lock:
            self._check_room()
            self._alerts.append(alert)
            self._note_added()

    def add_dead_letter(self, reason: str, topic: str, partition: int, offset: int, size: int,
                        failed_at_ms: int | None = None) -> None:
        with self._lock:
            self._check_room()
            if partition >= 0 and offset <= self._dlq_watermarks.get((topic, partition), -1):
                return  # stored before a crash: its offset was not committed, so it came again
            self._dead.append([failed_at_ms or int(time.time() * 1000), reason[:1000],
                               reason.split(":", 1)[0][:40], topic, partition, offset, size])
            self._note_added()

    def add_feedback(self, record: dict) -> None:
        """Buffer one on-call feedback record (a parsed ``distill.feedback.v1``)."""
        with self._lock:
            self._check_room()
            self._feedback.append([record["feedback_id"], record["ts_ms"], record["entity_type"],
                                   record["entity_id"], record["action"], record.get("reason", "")[:2000],
                                   record.get("actor", "")[:200]])
            self._note_added()

    def should_flush(self) -> bool:
        with self._lock:
            if self._buffered >= self.settings.batch_rows:
                return True
            return self._oldest is not None and self._clock() - self._oldest >= self.settings.batch_age_s

    @property
    def buffered(self) -> int:
        return self._buffered

    # -- flush / write -------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything buffered. On failure the rows stay buffered and the error is raised."""
        with self._write_lock:
            with self._lock:
                events, self._events = self._events, {}
                alerts, self._alerts = self._alerts, []
                dead, self._dead = self._dead, []
                feedback, self._feedback = self._feedback, []
                count, self._buffered, self._oldest = self._buffered, 0, None
            if not count:
                return 0
            try:
                self.write(events, alerts, dead, feedback)
            except Exception as exc:  # noqa: BLE001 - put the batch back, report one typed error
                with self._lock:
                    for tp, batch in events.items():
                        newer = self._events.get(tp)
                        if newer is not None:
                            batch.rows.extend(newer.rows)
                            batch.offsets.extend(newer.offsets)
                        self._events[tp] = batch
                    self._alerts[:0] = alerts
                    self._dead[:0] = dead
                    self._feedback[:0] = feedback
                    self._buffered += count
                    self._oldest = self._clock() if self._oldest is None else self._oldest
                    if self._failing_since is None:
                        self._failing_since = self._clock()
                raise SinkUnavailable(f"ClickHouse write failed: {exc}") from exc
            with self._lock:
                self._failing_since = None
            return count

    def write(self, events: dict[tuple[str, int], _Batch], alerts: list[dict], dead: list[list],
              feedback: list[list] = ()) -> None:
        if self.settings.fault_file is not None and Path(self.settings.fault_file).exists():
            raise ConnectionRefusedError(f"ClickHouse unavailable (fault injected: {self.settings.fault_file})")
        for (topic, partition), batch in events.items():
            step = self.settings.batch_rows
            batch_rows, batch_offsets = batch.rows, batch.offsets
            if partition >= 0:
                # Rows of a batch put back after a later insert of the same flush failed are
                # stored already; with newer rows appended the slices (and their dedup tokens)
                # differ from the first try, so only the watermark can tell.
                with self._lock:
                    mark = self._watermarks.get((topic, partition), -1)
                if batch_offsets and batch_offsets[0] <= mark:
                    keep = [i for i, offset in enumerate(batch_offsets) if offset > mark]
                    batch_rows, batch_offsets = [batch_rows[i] for i in keep], [batch_offsets[i] for i in keep]
            for start in range(0, len(batch_rows), step):
                rows, offsets = batch_rows[start:start + step], batch_offsets[start:start + step]
                token = f"events:{topic}:{partition}:{offsets[0]}:{offsets[-1]}:{len(rows)}" if partition >= 0 \
                    else None
                self._insert_events(rows, topic, partition, offsets, token)
                if partition >= 0:
                    with self._lock:
                        mark = self._watermarks.get((topic, partition), -1)
                        self._watermarks[(topic, partition)] = max(mark, offsets[-1])
                self.rows_written += len(rows)
        if alerts:
            self.client.insert(f"{self.db}.alerts", [self._alert_row(a) for a in alerts], column_names=[
                "alert_id", "ts", "entity_type", "entity_id", "api_key_ids", "score", "severity", "severity_rank",
                "reasons", "events_seen", "detector", "version"])
        with self._lock:  # a batch put back after a later insert failed was stored already
            dead = [r for r in dead if r[4] < 0 or r[5] > self._dlq_watermarks.get((r[3], r[4]), -1)]
        if dead:
            self.client.insert(f"{self.db}.dlq", [r[:5] + [offset_of(r[5]), r[6], epoch_of(r[5])] for r in dead],
                               column_names=["failed_at", "reason", "reason_class", "topic", "partition", "offset",
                                             "size", "epoch"])
            with self._lock:
                for _, _, _, topic, partition, offset, _ in dead:
                    if partition >= 0 and offset > self._dlq_watermarks.get((topic, partition), -1):
                        self._dlq_watermarks[(topic, partition)] = offset
        if feedback:
            self.client.insert(f"{self.db}.feedback", list(feedback), column_names=[
                "feedback_id", "ts", "entity_type", "entity_id", "action", "reason", "actor"])

    def _insert_events(self, rows: list[dict], topic: str, partition: int, offsets: list[int],
                       token: str | None) -> None:
        # One C-level conversion of the row dicts (per-column Python loops held the GIL
        # long enough to slow the worker's event loop down).
        table = pa.Table.from_pylist(rows, schema=_ROW_SCHEMA).rename_columns(_ROW_NAMES)
        n = len(rows)
        position_columns = {
            "kafka_topic": lambda: pa.array([topic] * n, pa.string()),
            "kafka_partition": lambda: pa.array([partition] * n, pa.int32()),
            "kafka_offset": lambda: pa.array([offset_of(p) for p in offsets], pa.int64()),
            "kafka_epoch": lambda: pa.array([epoch_of(p) for p in offsets], pa.uint32()),
        }
        for name in _POSITION_COLUMNS:
            table = table.append_column(name, position_columns[name]())
        settings = {"deduplicate_blocks_in_dependent_materialized_views": 1}
        if token:
            settings["insert_deduplication_token"] = token
        self.client.insert_arrow(f"{self.db}.events", table, settings=settings)

    @staticmethod
    def _alert_row(alert: dict) -> list:
        from distillguard.models.events import parse_rfc3339_ms

        ts_ms = parse_rfc3339_ms(alert["ts"])
        rank = SEVERITY_RANK.get(alert["severity"], 0)
        return [alert["alert_id"], ts_ms, alert["entity_type"], alert["entity_id"], list(alert["api_key_ids"]),
                float(alert["score"]), alert["severity"], rank, json.dumps(alert.get("reasons", [])),
                int(alert.get("events_seen", 0)), alert.get("detector", ""), rank * 10**13 + ts_ms]

    # -- reads (the process that owns the sink serves queries) ---------------------------
    def summary(self, limit: int = 10) -> list[dict]:
        """Top keys by max score, with their volume, extraction share and alerts."""
        result = self.client.query(f"""
            SELECT k.api_key_id AS api_key_id, k.account_id AS account_id, k.events AS events,
                   k.max_score AS max_score, k.extraction_share AS extraction_share, k.topics AS topics,
                   ifNull(a.alerts, 0) AS alerts
            FROM (
                SELECT api_key_id, any(account_id) AS account_id, countMerge(events) AS events,
                       round(maxMerge(score_max), 3) AS max_score, round(avgMerge(style_avg), 3) AS extraction_share,
                       uniqMerge(topics) AS topics
                FROM {self.db}.key_hour GROUP BY api_key_id
            ) AS k
            LEFT JOIN (
                SELECT arrayJoin(api_key_ids) AS api_key_id, count() AS alerts
                FROM {self.db}.alerts FINAL GROUP BY api_key_id
            ) AS a USING (api_key_id)
            ORDER BY alerts DESC, max_score DESC, events DESC
            LIMIT {int(limit)}""", settings={"join_use_nulls": 1})
        return [dict(zip(result.column_names, row)) for row in result.result_rows]

    def alert_rows(self, limit: int = 100) -> list[dict]:
        result = self.client.query(f"""
            SELECT alert_id, toString(ts) AS ts, entity_type, entity_id, api_key_ids, score, severity,
                   reasons, events_seen, detector
            FROM {self.db}.alerts FINAL ORDER BY ts DESC LIMIT {int(limit)}""")
        rows = []
        for row in result.result_rows:
            item = dict(zip(result.column_names, row))
            item["reasons"] = json.loads(item["reasons"])
            rows.append(item)
        return rows

    def table_counts(self) -> dict:
        """Row counts and column names: what is stored, for operators and tests."""
        q = self.client.query
        columns = [r[0] for r in q(f"SELECT concat(table, '.', name) FROM system.columns "
                                   f"WHERE database = '{self.db}'").result_rows]
        return {
            "events": q(f"SELECT count() FROM {self.db}.events").result_rows[0][0],
            "key_minute_events": q(f"SELECT countMerge(events) FROM {self.db}.key_minute").result_rows[0][0],
            "key_hour_events": q(f"SELECT countMerge(events) FROM {self.db}.key_hour").result_rows[0][0],
            "alerts": q(f"SELECT count() FROM {self.db}.alerts FINAL").result_rows[0][0],
            "dlq": q(f"SELECT count() FROM {self.db}.dlq").result_rows[0][0],
            "feedback": q(f"SELECT count() FROM {self.db}.feedback FINAL").result_rows[0][0],
            "columns": columns,
        }

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
