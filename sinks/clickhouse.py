"""The ClickHouse sink: one client factory, migrations on start-up, a batched idempotent writer.

Embedded chDB by default (a directory under the data dir, owned by this process: chDB
allows one process per directory), a ClickHouse server over HTTP when
``DG_CLICKHOUSE_URL`` / ``CLICKHOUSE_URL`` is set. The same code writes to both.

Writer contract (quix-streams style): ``add*`` buffers, ``flush`` writes, and when the
buffer is full because ClickHouse is failing, ``add`` raises :class:`SinkBackpressureError`
with ``retry_after`` instead of retrying or growing without bound. Exactly-once rows across
worker crashes: rows carry their Kafka position; the sink drops rows at or below the
highest offset already stored for that partition (its watermark), and every insert carries
a deduplication token built from its positions, so re-sending a batch changes nothing.
"""
from __future__ import annotations

import json
import logging
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from distillguard.contracts.alert import Severity
from distillguard.contracts.feedback import Feedback
from distillguard.devtools.faults import FaultInjection
from distillguard.models.columns import EVENT_COLUMNS
from distillguard.models.pipeline import ROW_COLUMNS
from distillguard.models.positions import EPOCH_SHIFT, StoredRecord, epoch_of, offset_of
from distillguard.settings import DistillguardSettings

from .errors import RowsRejected, SchemaError, SinkBackpressureError, SinkUnavailable
from .migrations import LATEST, MIGRATIONS
from .rollups import RollupCheck, check_rollups

log = logging.getLogger(__name__)


class ClickHouseSettings(DistillguardSettings):
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
    # False: this process runs no DDL; it checks the schema is at this version's and stops with
    # the reason when not. For a ClickHouse user without DDL rights, and for deployments where
    # one `distillguard migrate` (the k8s Job) changes the schema before the new version rolls out.
    migrate: bool = True
    # On start the rollups are checked against the events rows inserted since the last check
    # (sinks/rollups.py); a database never checked (or not for long) is checked this far back
    # from its newest row at most, so that a start never reads the whole table.
    rollup_check_max_lookback_s: float = Field(7 * 86400.0, gt=0)
    # A running worker checks the rows stored since the last check this often (what a start
    # after a kill then reads is at most this much), leaving out the last minute's rows.
    rollup_check_interval_s: float = Field(600.0, gt=0)

    @property
    def embedded(self) -> bool:
        return not self.url

    def describe(self) -> str:
        """Where the sink writes, without credentials (for logs)."""
        if self.embedded:
            return f"chdb://{(Path(self.data_dir) / 'clickhouse').resolve()}"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def make_client(settings: ClickHouseSettings, *, reads: bool = False):
    """The one place a ClickHouse client is created.

    ``reads=True``: a client for queries from web threads (the worker's and the dashboard's
    pages), session-less. clickhouse-connect gives a client one HTTP session, and a ClickHouse
    server refuses a second query in a session while one runs; the flush thread's client (and
    its session) stay the writer's. chDB runs in-process with no session: one client serves both.
    """
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
            password=password, connect_timeout=10, send_receive_timeout=60,
            **({"autogenerate_session_id": False} if reads else {}))
    except Exception as exc:  # noqa: BLE001 - one typed error for every backend failure
        raise SinkUnavailable(f"cannot open ClickHouse at {settings.describe()}: {exc}") from None


def schema_version(client, settings: ClickHouseSettings) -> int:
    """The schema version the database is at: 0 when it has none (never migrated)."""
    db = settings.database
    exists = client.query(f"SELECT count() FROM system.tables WHERE database = '{db}' "
                          f"AND name = 'schema_migrations'").result_rows[0][0]
    if not exists:
        return 0
    return int(client.query(f"SELECT max(version) FROM {db}.schema_migrations").result_rows[0][0] or 0)


def prepare_schema(client, settings: ClickHouseSettings) -> list[int]:
    """What a worker or the dashboard does on start: migrate (``DG_CLICKHOUSE_MIGRATE``, the
    default) or check that ``distillguard migrate`` did. Returns the versions applied now."""
    if settings.migrate:
        return apply_migrations(client, settings)
    version = schema_version(client, settings)
    if version != LATEST:
        raise SchemaError(f"database {settings.database} is at schema v{version}, this distillguard needs "
                          f"v{LATEST}, and DG_CLICKHOUSE_MIGRATE is false: run `distillguard migrate` first")
    return []


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


_ARROW_BY_CLICKHOUSE_TYPE = {"String": pa.string(), "UInt8": pa.uint8(), "UInt16": pa.uint16(),
                             "UInt32": pa.uint32(), "UInt64": pa.uint64(), "Float32": pa.float32()}
# From the one table of column types the request validator also checks values against.
_ARROW_TYPES = {column: _ARROW_BY_CLICKHOUSE_TYPE[kind] for column, kind in EVENT_COLUMNS.items()}


if set(_ARROW_TYPES) | {"ts_ms"} != set(ROW_COLUMNS):  # a feature column without a migration
    raise SchemaError(f"events table columns {sorted(_ARROW_TYPES)} do not match the feature row {ROW_COLUMNS}")
_ROW_SCHEMA = pa.schema([("ts_ms", pa.timestamp("ms", tz="UTC"))] + list(_ARROW_TYPES.items()))
_ROW_NAMES = ["ts"] + list(_ARROW_TYPES)
# Where each row came from: (epoch, offset) is its position (see streams/epochs.py).
_POSITION_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_epoch")

# ClickHouse error codes that are about the rows sent, not the server: a value that does not
# parse or fit its column. Any other error (connection refused, timeout, too many parts,
# read-only table...) means ClickHouse is unavailable and the batch is retried whole.
_ROW_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
})
# Rows within this much of the events TTL are dead-lettered too: ClickHouse applies the TTL when
# the row is inserted, up to a flush later.
_TTL_SLACK_MS = 60_000
_MAX_REJECTED_KEPT = 100_000
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
# Python-side conversion of rows to the wire format (arrow, or clickhouse_connect's native
# columns): a value that does not fit its type. UnicodeEncodeError (a lone surrogate) is a
# ValueError.
_CONVERSION_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError, struct.error)


def refuses_rows(exc: BaseException) -> bool:
    """True when ``exc`` says the rows cannot be stored (retrying them can never succeed),
    False when it says ClickHouse is unavailable (retry the batch, push back meanwhile)."""
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

    if isinstance(exc, (RowsRejected, DataError)):
        return True
    if isinstance(exc, (OSError, OperationalError)):  # connection refused or reset, timeouts
        return False
    if isinstance(exc, DatabaseError):
        code = _ERROR_CODE.search(str(exc))
        return code is not None and int(code.group(1)) in _ROW_ERROR_CODES
    return isinstance(exc, _CONVERSION_ERRORS)


def _describe(exc: BaseException) -> str:
    """The error for a dead-letter reason: one line, bounded, storable (the message may quote
    the very value that could not be encoded, e.g. a lone surrogate)."""
    text = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:
        text += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
    return " ".join(text.split())[:300].encode("utf-8", "backslashreplace").decode("utf-8")


def isolate_refused(count: int, insert, refuse) -> int:
    """Insert items ``[0, count)`` with ``insert(lo, hi)``; when ClickHouse refuses a slice,
    split it in halves until each refused item stands alone, and hand it to
    ``refuse(index, error)``. Slices are inserted and refused in index order (offset order,
    which the watermarks rely on). Errors that mean ClickHouse is unavailable propagate.

    O(k log n) inserts for k refused items among n; returns how many were refused.
    """
    refused = 0
    pending = [(0, count)]
    while pending:
        lo, hi = pending.pop()
        try:
            insert(lo, hi)
        except Exception as exc:  # noqa: BLE001 - classified: refused rows, or re-raised
            if not refuses_rows(exc):
                raise
            if hi - lo == 1:
                refuse(lo, _describe(exc))
                refused += 1
                continue
            mid = (lo + hi) // 2
            pending += [(mid, hi), (lo, mid)]  # the left half first
    return refused


def _dedup_token(positions: list[tuple[str, int, int]]) -> str | None:
    """The insert's deduplication token: each partition's run of positions (first, last,
    count), so re-sending the same rows is a no-op in ClickHouse. None when a row has no
    position (nothing can tell two such inserts apart)."""
    runs: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in positions:
        if partition < 0:
            return None
        run = runs.get((topic, partition))
        if run is None:
            runs[(topic, partition)] = [offset, offset, 1]
        else:
            run[1], run[2] = offset, run[2] + 1
    return "events:" + ";".join(f"{topic}:{partition}:{first}:{last}:{count}"
                                for (topic, partition), (first, last, count) in runs.items())


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row ClickHouse refused, already stored in the ``dlq`` table with ``reason``; the
    worker sends the source record to the dead-letter topic (``take_rejected``)."""

    table: str  # events, alerts, feedback; dlq: a dead letter that could not be stored either
    reason: str  # "sink_rejected: <table>: <error>"
    topic: str
    partition: int
    offset: int
    entity: str = ""  # what the row was about, for logs (an alert or feedback id)


_ALERT_COLUMNS = ["alert_id", "ts", "entity_type", "entity_id", "api_key_ids", "score", "severity",
                  "severity_rank", "reasons", "events_seen", "detector", "version"]
_DLQ_COLUMNS = ["failed_at", "reason", "reason_class", "topic", "partition", "offset", "size"]
_FEEDBACK_COLUMNS = ["feedback_id", "ts", "entity_type", "entity_id", "action", "reason", "actor"]


def _dead_letter_row(reason: str, topic: str, partition: int, offset: int, size: int,
                     failed_at_ms: int | None = None) -> list:
    # Reasons may quote a value that cannot be encoded (a lone surrogate): made storable here
    # so the dead letter of an unstorable row is never unstorable itself.
    reason = reason[:1000].encode("utf-8", "backslashreplace").decode("utf-8")
    return [failed_at_ms or int(time.time() * 1000), reason, reason.split(":", 1)[0][:40], topic, partition,
            offset, size]


@dataclass
class _Batch:
    topic: str
    partition: int
    rows: list[dict] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


class ClickHouseSink:
    """Buffers feature rows, alerts and dead-letter records; writes them in batches."""

    def __init__(self, settings: ClickHouseSettings | None = None, client=None, *, read_client=None,
                 clock=time.monotonic, faults: FaultInjection | None = None) -> None:
        self.faults = faults if faults is not None else FaultInjection()  # (the fault tests' switch)
        self.settings = settings or ClickHouseSettings()
        self.db = self.settings.database
        self.client = client or make_client(self.settings)
        # Web threads query on their own client (make_client(reads=True)), never the writer's.
        self.read_client = read_client or (self.client if self.settings.embedded or client is not None
                                           else make_client(self.settings, reads=True))
        self._clock = clock
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._events: dict[tuple[str, int], _Batch] = {}
        self._alerts: list[dict] = []
        self._exculpated: list[dict] = []  # exculpated detections (contracts.alert.is_exculpated)
        self._dead: list[list] = []
        self._feedback: list[list] = []
        self._buffered = 0
        self._oldest: float | None = None
        self._failing_since: float | None = None
        # Rows taken by a flush still being written: they are in memory until it succeeds, and
        # a failed write puts them back; the buffer bound counts them (a flush runs off the
        # agent's thread, which kept adding while the buffer looked empty: 605 rows past a
        # 200-row bound in one outage test run).
        self._in_flight = 0
        self.rows_written = 0
        # Rows ClickHouse refused (stored as dead letters, not retried) until the worker takes
        # them after each flush. Bounded for callers that never take them (the dashboard's
        # file ingest): beyond _MAX_REJECTED_KEPT they are only counted, their dlq rows stay.
        self._rejected: list[RejectedRow] = []
        self.rows_rejected = 0
        self.dead_letters_lost = 0  # dlq rows that could not be stored either (logged)
        self._ttl_ms = self.settings.events_ttl_days * 86_400_000
        prepare_schema(self.client, self.settings)
        # Before the first write: rollup rows a kill left out (or doubled) are rebuilt from events.
        self.rollup_check = self._check_rollups()
        self._watermarks: dict[tuple[str, int], int] = self._read_watermarks()
        # The dead-letter table's own positions: a record re-read after a crash is stored once.
        self._dlq_watermarks: dict[tuple[str, int], int] = self._read_dlq_watermarks()
        # The highest position buffered per partition (rows and dead letters), not yet stored:
        # a partition's records reach the sink in position order, so one at or below it is a
        # re-delivery. The watermark alone missed those that come back before the flush (a
        # rebalance restores key state from the changelog, older than the buffered rows: the
        # same rows were applied again and both copies inserted in one flush).
        self._buffered_marks: dict[tuple[str, int], int] = {}
        self._dlq_buffered_marks: dict[tuple[str, int], int] = {}

    def check_rollups(self, settle_s: float = 60.0) -> RollupCheck | None:
        """Check (and repair) the rollups of the rows stored since the last check, between
        flushes (the process's own inserts are then complete)."""
        with self._write_lock:
            return self._check_rollups(settle_s)

    def _check_rollups(self, settle_s: float = 0.0) -> RollupCheck | None:
        try:
            return check_rollups(self.client, self.db, max_lookback_s=self.settings.rollup_check_max_lookback_s,
                                 settle_s=settle_s)
        except Exception as exc:  # noqa: BLE001 - a failed check must not stop the events being stored
            # Nothing is lost: the verified point did not move, the next start checks again.
            log.error("rollup check failed (rollups may disagree with events until the next start): %s: %s",
                      type(exc).__name__, exc)
            return None

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
        held = self._buffered + self._in_flight
        if held >= self.settings.max_buffered_rows and self._failing_since is not None:
            failing_s = self._clock() - self._failing_since
            raise SinkBackpressureError(self.settings.retry_after_s,
                                        f"ClickHouse failing for {failing_s:.0f}s and {held} rows buffered")
        if held >= 2 * self.settings.max_buffered_rows:
            raise SinkBackpressureError(self.settings.retry_after_s, f"{held} rows buffered; flush is behind")

    def _note_added(self) -> None:
        self._buffered += 1
        if self._oldest is None:
            self._oldest = self._clock()

    def add(self, row: dict, partition: int = -1, offset: int = -1, topic: str = "") -> bool:
        """Buffer one feature row; False when it was already stored (at or below the watermark)."""
        with self._lock:
            self._check_room()
            if partition >= 0:
                tp = (topic, partition)
                if offset <= max(self._watermarks.get(tp, -1), self._buffered_marks.get(tp, -1)):
                    return False
            if self._expired(row, topic, partition, offset):
                return True
            if partition >= 0:
                self._buffered_marks[tp] = offset
            batch = self._events.get((topic, partition))
            if batch is None:
                batch = self._events[(topic, partition)] = _Batch(topic, partition)
            batch.rows.append(row)
            batch.offsets.append(offset)
            self._note_added()
            return True

    def _expired(self, row: dict, topic: str, partition: int, offset: int) -> bool:
        """A row older than the events TTL: ClickHouse would drop it at insert without a word, so
        it is dead-lettered instead (lock held)."""
        ts_ms = row.get("ts_ms")
        if not isinstance(ts_ms, int) or ts_ms >= int(time.time() * 1000) - self._ttl_ms + _TTL_SLACK_MS:
            return False
        reason = f"sink_rejected: events: ts older than the events TTL ({self.settings.events_ttl_days} days)"
        self._dead.append(_dead_letter_row(reason, topic, partition, offset, 0))
        self._keep_rejected(RejectedRow("events", reason, topic, partition, offset))
        self._note_added()
        return True

    def _keep_rejected(self, row: RejectedRow) -> None:  # lock held
        if row.table != "dlq":
            self.rows_rejected += 1
        if len(self._rejected) < _MAX_REJECTED_KEPT:
            self._rejected.append(row)

    def add_alert(self, alert: dict) -> None:
        with self._lock:
            self._check_room()
            self._alerts.append(alert)
            self._note_added()

    def add_exculpated(self, alert: dict) -> None:
        """Buffer one exculpated detection (``contracts.alert.is_exculpated``: recorded in the
        ``exculpated`` table, not sent on ``distill.alerts``)."""
        with self._lock:
            self._check_room()
            self._exculpated.append(alert)
            self._note_added()

    def add_dead_letter(self, reason: str, topic: str, partition: int, offset: int, size: int,
                        failed_at_ms: int | None = None) -> None:
        with self._lock:
            self._check_room()
            if partition >= 0:
                tp = (topic, partition)
                if offset <= max(self._dlq_watermarks.get(tp, -1), self._dlq_buffered_marks.get(tp, -1)):
                    return  # stored (or buffered) before: its offset was not committed, so it came again
                self._dlq_buffered_marks[tp] = offset
            self._dead.append(_dead_letter_row(reason, topic, partition, offset, size, failed_at_ms))
            self._note_added()

    def add_feedback(self, record: Feedback) -> None:
        """Buffer one on-call feedback record (a parsed ``distill.feedback.v1``)."""
        with self._lock:
            self._check_room()
            self._feedback.append([record.feedback_id, record.ts_ms, record.entity_type, record.entity_id,
                                   record.action, record.reason, record.actor])
            self._note_added()

    def should_flush(self) -> bool:
        with self._lock:
            if self._buffered >= self.settings.batch_rows:
                return True
            return self._oldest is not None and self._clock() - self._oldest >= self.settings.batch_age_s

    @property
    def buffered(self) -> int:
        return self._buffered

    def take_rejected(self) -> list[RejectedRow]:
        """The rows ClickHouse refused since the last call (already in the ``dlq`` table)."""
        with self._lock:
            rejected, self._rejected = self._rejected, []
            return rejected

    # -- flush / write -------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything buffered. On failure the rows stay buffered and the error is raised."""
        with self._write_lock:
            with self._lock:
                events, self._events = self._events, {}
                alerts, self._alerts = self._alerts, []
                exculpated, self._exculpated = self._exculpated, []
                dead, self._dead = self._dead, []
                feedback, self._feedback = self._feedback, []
                count, self._buffered, self._oldest = self._buffered, 0, None
                self._in_flight = count
            if not count:
                return 0
            try:
                self.write(events, alerts, dead, feedback, exculpated)
            except Exception as exc:  # noqa: BLE001 - put the batch back, report one typed error
                with self._lock:
                    self._in_flight = 0
                    for tp, batch in events.items():
                        newer = self._events.get(tp)
                        if newer is not None:
                            batch.rows.extend(newer.rows)
                            batch.offsets.extend(newer.offsets)
                        self._events[tp] = batch
                    self._alerts[:0] = alerts
                    self._exculpated[:0] = exculpated
                    self._dead[:0] = dead
                    self._feedback[:0] = feedback
                    self._buffered += count
                    self._oldest = self._clock() if self._oldest is None else self._oldest
                    if self._failing_since is None:
                        self._failing_since = self._clock()
                raise SinkUnavailable(f"ClickHouse write failed: {exc}") from exc
            with self._lock:
                self._failing_since, self._in_flight = None, 0
            return count

    def write(self, events: dict[tuple[str, int], _Batch], alerts: list[dict], dead: list[list],
              feedback: list[list] = (), exculpated: list[dict] = ()) -> None:
        """Insert a flush's rows. Rows ClickHouse refuses are isolated and dead-lettered (see
        :func:`isolate_refused`); any other error means ClickHouse is unavailable and is raised."""
        if self.faults.clickhouse_down():
            raise ConnectionRefusedError(f"ClickHouse unavailable (fault injected: {self.faults.clickhouse_down_file})")
        put_back = len(dead)  # the caller puts these back if the write fails
        dead = list(dead)  # refused rows join as dead letters
        try:
            self._write_rows(events, alerts, dead, feedback, exculpated)
        except Exception:
            # Dead letters of rows refused before ClickHouse became unavailable: their rows are
            # past the watermark now and will not be refused again, so they wait for the retry.
            with self._lock:
                self._dead.extend(dead[put_back:])
                self._buffered += len(dead) - put_back
            raise

    def _write_rows(self, events: dict[tuple[str, int], _Batch], alerts: list[dict], dead: list[list],
                    feedback: list[list], exculpated: list[dict] = ()) -> None:
        self._write_events(events, dead)
        self._write_isolated("alerts", [(str(a.get("alert_id", "")), a) for a in alerts], self._alert_row,
                             _ALERT_COLUMNS, dead)
        self._write_isolated("exculpated", [(str(a.get("alert_id", "")), a) for a in exculpated],
                             self._alert_row, _ALERT_COLUMNS, dead)
        # Feedback before dead letters, so a refused feedback record is dead-lettered too.
        self._write_isolated("feedback", [(str(r[0]), r) for r in feedback], list, _FEEDBACK_COLUMNS, dead)
        with self._lock:  # a batch put back after a later insert failed was stored already
            dead = [r for r in dead if r[4] < 0 or r[5] > self._dlq_watermarks.get((r[3], r[4]), -1)]
        if dead:
            self._write_dead_letters(dead)

    def _write_events(self, events: dict[tuple[str, int], _Batch], dead: list[list]) -> None:
        """All partitions' rows in one insert (per ``batch_rows``): chDB spends ~45 ms of CPU on
        an insert whatever its size, so an insert per partition per flush cost most of a core.
        Rows stay grouped by partition in offset order, which the watermarks rely on."""
        rows: list[dict] = []
        positions: list[tuple[str, int, int]] = []
        for (topic, partition), batch in events.items():
            batch_rows, batch_offsets = self._not_stored(topic, partition, batch)
            rows += batch_rows
            positions += [(topic, partition, offset) for offset in batch_offsets]
        step = self.settings.batch_rows
        for start in range(0, len(rows), step):
            self._write_event_slice(rows[start:start + step], positions[start:start + step], dead)

    def _not_stored(self, topic: str, partition: int, batch: _Batch) -> tuple[list[dict], list[int]]:
        """A partition's buffered rows above its watermark (rows and offsets).

        Rows of a batch put back after a later insert of the same flush failed are stored
        already; with newer rows appended the slices (and their dedup tokens) differ from the
        first try, so only the watermark can tell."""
        if partition < 0:
            return batch.rows, batch.offsets
        with self._lock:
            mark = self._watermarks.get((topic, partition), -1)
        if not batch.offsets or batch.offsets[0] > mark:
            return batch.rows, batch.offsets
        keep = [i for i, offset in enumerate(batch.offsets) if offset > mark]
        return [batch.rows[i] for i in keep], [batch.offsets[i] for i in keep]

    def _write_event_slice(self, rows: list[dict], positions: list[tuple[str, int, int]], dead: list[list]) -> None:
        """Insert one slice of rows (any partitions, ``positions`` their (topic, partition,
        offset)); refused rows become dead letters. Inserts and refusals go in slice order,
        each moving its partitions' watermarks past its rows."""
        def advance(lo: int, hi: int) -> None:
            with self._lock:
                for topic, partition, offset in positions[lo:hi]:
                    if partition >= 0 and offset > self._watermarks.get((topic, partition), -1):
                        self._watermarks[(topic, partition)] = offset

        def insert(lo: int, hi: int) -> None:
            self._insert_events(rows[lo:hi], positions[lo:hi], _dedup_token(positions[lo:hi]))
            advance(lo, hi)
            self.rows_written += hi - lo

        def refuse(index: int, error: str) -> None:
            topic, partition, offset = positions[index]
            self._reject("events", error, topic, partition, offset, dead)
            advance(index, index + 1)

        isolate_refused(len(rows), insert, refuse)

    def _write_isolated(self, table: str, records: list[tuple[str, object]], to_row, columns: list[str],
                        dead: list[list]) -> None:
        """Insert alert or feedback records ``(id, record)`` as ``to_row(record)``; records that
        cannot be converted or that ClickHouse refuses become dead letters (no source position)."""
        def refuse(index: int, error: str) -> None:
            log.error("ClickHouse refused a row of %s (%s): %s", table, records[index][0], error)
            self._reject(table, error, "", -1, -1, dead, records[index][0])

        rows = []
        for index, (_, record) in enumerate(records):
            try:
                rows.append(to_row(record))
            except Exception as exc:  # noqa: BLE001 - a malformed record is refused, never retried
                rows.append(None)
                refuse(index, _describe(exc))
        kept = [index for index, row in enumerate(rows) if row is not None]

        def insert(lo: int, hi: int) -> None:
            self.client.insert(f"{self.db}.{table}", [rows[i] for i in kept[lo:hi]], column_names=columns)

        if kept:
            isolate_refused(len(kept), insert, lambda at, error: refuse(kept[at], error))

    def _reject(self, table: str, error: str, topic: str, partition: int, offset: int,
                dead: list[list], entity: str = "") -> None:
        reason = f"sink_rejected: {table}: {error}"
        dead.append(_dead_letter_row(reason, topic, partition, offset, 0))
        with self._lock:
            self._keep_rejected(RejectedRow(table, reason, topic, partition, offset, entity))

    def _write_dead_letters(self, dead: list[list]) -> None:
        """Insert dlq rows; one that ClickHouse refuses too is logged and counted, never retried."""
        def insert(lo: int, hi: int) -> None:
            # dead letters carry positions (epoch, offset): stored as the two columns
            self.client.insert(f"{self.db}.dlq", [r[:5] + [offset_of(r[5]), r[6], epoch_of(r[5])] for r in dead[lo:hi]],
                               column_names=_DLQ_COLUMNS + ["epoch"])
            with self._lock:
                for _, _, _, topic, partition, offset, _ in dead[lo:hi]:
                    if partition >= 0 and offset > self._dlq_watermarks.get((topic, partition), -1):
                        self._dlq_watermarks[(topic, partition)] = offset

        def lost(index: int, error: str) -> None:
            _, _, reason_class, topic, partition, offset, _ = dead[index]
            log.error("dead letter %s:%s:%s (%s) could not be stored: %s", topic, partition, offset,
                      reason_class, error)
            with self._lock:
                self.dead_letters_lost += 1
                self._keep_rejected(RejectedRow("dlq", f"sink_rejected: dlq: {error}", topic, partition, offset))

        isolate_refused(len(dead), insert, lost)

    def _insert_events(self, rows: list[dict], positions: list[tuple[str, int, int]], token: str | None) -> None:
        # One C-level conversion of the row dicts (per-column Python loops held the GIL
        # long enough to slow the worker's event loop down).
        try:
            table = pa.Table.from_pylist(rows, schema=_ROW_SCHEMA).rename_columns(_ROW_NAMES)
        except _CONVERSION_ERRORS as exc:
            raise RowsRejected(f"a row does not fit the events table: {type(exc).__name__}: {exc}") from exc
        topics, partitions, offsets = zip(*positions) if positions else ((), (), ())
        position_columns = {
            "kafka_topic": lambda: pa.array(topics, pa.string()),
            "kafka_partition": lambda: pa.array(partitions, pa.int32()),
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
        rank = Severity.rank_of(alert["severity"])
        return [alert["alert_id"], ts_ms, alert["entity_type"], alert["entity_id"], list(alert["api_key_ids"]),
                float(alert["score"]), alert["severity"], rank, json.dumps(alert.get("reasons", [])),
                int(alert.get("events_seen", 0)), alert.get("detector", ""), rank * 10**13 + ts_ms]

    # -- reads (the process that owns the sink serves queries) ---------------------------
    def summary(self, limit: int = 10) -> list[dict]:
        """Top keys by max score, with their volume, extraction share and alerts."""
        result = self.read_client.query(f"""
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
        result = self.read_client.query(f"""
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
        q = self.read_client.query
        columns = [r[0] for r in q(f"SELECT concat(table, '.', name) FROM system.columns "
                                   f"WHERE database = '{self.db}'").result_rows]
        return {
            "events": q(f"SELECT count() FROM {self.db}.events").result_rows[0][0],
            "key_minute_events": q(f"SELECT countMerge(events) FROM {self.db}.key_minute").result_rows[0][0],
            "key_hour_events": q(f"SELECT countMerge(events) FROM {self.db}.key_hour").result_rows[0][0],
            "alerts": q(f"SELECT count() FROM {self.db}.alerts FINAL").result_rows[0][0],
            "exculpated": q(f"SELECT count() FROM {self.db}.exculpated FINAL").result_rows[0][0],
            "dlq": q(f"SELECT count() FROM {self.db}.dlq").result_rows[0][0],
            "feedback": q(f"SELECT count() FROM {self.db}.feedback FINAL").result_rows[0][0],
            "columns": columns,
        }

    def close(self) -> None:
        for client in {id(c): c for c in (self.read_client, self.client)}.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
