"""The read side: the fixed, parameterised SELECTs behind every dashboard panel.

No user SQL reaches ClickHouse: each panel is one of the statements below, with ``{db}``
and ``{table}`` filled from fixed choices and every user input passed as a ClickHouse query
parameter (``{name:Type}``). ``docs/queries.md`` shows the same statements for analysts
(``clickhouse-client --param_org=... --param_t0=...``). Works on the embedded chDB and on a
ClickHouse server alike (the client from :func:`distillguard.sinks.clickhouse.make_client`).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

# Filters on a rollup table (key_minute / key_hour): time, org, key.
ROLLUP_FILTER = """bucket >= {t0:DateTime} AND bucket < {t1:DateTime}
  AND ({org:String} = '' OR org_id = {org:String})
  AND ({key:String} = '' OR api_key_id = {key:String})"""

# Filters on incidents / alert versions: a key filter matches any member key; an org filter
# matches incidents with a member key seen in that org (alerts carry keys, not orgs).
INCIDENT_FILTER = """({key:String} = '' OR has(api_key_ids, {key:String}))
  AND ({org:String} = '' OR hasAny(api_key_ids,
       (SELECT groupUniqArray(api_key_id) FROM {db}.key_hour WHERE org_id = {org:String})))"""

PANEL_SQL: dict[str, str] = {
    "top_keys": """
SELECT k.api_key_id AS api_key_id, k.account AS account_id, k.org AS org_id, k.events AS events,
       k.max_score AS max_score, k.avg_score AS avg_score, k.extraction_share AS extraction_share,
       k.topics AS topics, a.incidents AS incidents, a.worst AS worst_severity_rank
FROM (
    SELECT api_key_id, any(account_id) AS account, any(org_id) AS org, countMerge(events) AS events,
           round(maxMerge(score_max), 3) AS max_score, round(avgMerge(score_avg), 3) AS avg_score,
           round(avgMerge(style_avg), 3) AS extraction_share, uniqMerge(topics) AS topics
    FROM {db}.{table}
    WHERE ROLLUP_FILTER
    GROUP BY api_key_id
) AS k
LEFT JOIN (
    SELECT arrayJoin(api_key_ids) AS api_key_id, count() AS incidents, max(severity_rank) AS worst
    FROM {db}.incidents
    WHERE updated_at >= {t0:DateTime} AND opened_at < {t1:DateTime}
    GROUP BY api_key_id
) AS a USING (api_key_id)
ORDER BY max_score DESC, incidents DESC, events DESC
LIMIT {limit:UInt32}""",
    "top_clusters": """
SELECT incident_id, entity_id, length(api_key_ids) AS members, severity, round(score, 3) AS score,
       events_seen, opened_at, updated_at, updates
FROM {db}.incidents
WHERE entity_type = 'cluster' AND updated_at >= {t0:DateTime} AND opened_at < {t1:DateTime}
  AND INCIDENT_FILTER
ORDER BY severity_rank DESC, members DESC, score DESC
LIMIT {limit:UInt32}""",
    "score_over_time": """
SELECT api_key_id, toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS t,
       round(maxMerge(score_max), 4) AS max_score, countMerge(events) AS events
FROM {db}.{table}
WHERE ROLLUP_FILTER
  AND api_key_id IN (
      SELECT api_key_id FROM {db}.{table}
      WHERE ROLLUP_FILTER
      GROUP BY api_key_id ORDER BY maxMerge(score_max) DESC, countMerge(events) DESC, api_key_id
      LIMIT {series:UInt32})
GROUP BY api_key_id, t
ORDER BY api_key_id, t""",
    "extraction_share": """
SELECT toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS t, countMerge(events) AS events,
       round(avgMerge(style_avg), 4) AS extraction_share, round(avgMerge(score_avg), 4) AS avg_score
FROM {db}.{table}
WHERE ROLLUP_FILTER
GROUP BY t
ORDER BY t""",
    "campaign_timeline": """
SELECT DISTINCT alert_id, entity_type, entity_id, ts, severity, severity_rank, round(score, 3) AS score,
       length(api_key_ids) AS members, version
FROM {db}.alert_history
WHERE ts >= {t0:DateTime} AND ts < {t1:DateTime}
  AND alert_id IN (
      SELECT incident_id FROM {db}.incidents
      WHERE updated_at >= {t0:DateTime} AND opened_at < {t1:DateTime} AND INCIDENT_FILTER
      ORDER BY severity_rank DESC, score DESC, incident_id LIMIT {limit:UInt32})
ORDER BY alert_id, version""",
    "alert_volume": """
SELECT toStartOfInterval(ts, toIntervalSecond({step:UInt32})) AS t, severity, count() AS alerts
FROM (
    SELECT DISTINCT alert_id, version, ts, severity
    FROM {db}.alert_history
    WHERE ts >= {t0:DateTime} AND ts < {t1:DateTime} AND INCIDENT_FILTER
)
GROUP BY t, severity
ORDER BY t, severity""",
    # Exculpated detections (contracts.alert.is_exculpated): recorded by the workers instead of
    # sent; the latest version of each, with the evidence that held it at info (first reason).
    "exculpated": """
SELECT alert_id, entity_type, entity_id, length(api_key_ids) AS keys, round(score, 3) AS score, events_seen,
       JSONExtractString(reasons, 1, 'value') AS evidence, ts AS updated_at
FROM {db}.exculpated FINAL
WHERE ts >= {t0:DateTime} AND ts < {t1:DateTime}
  AND INCIDENT_FILTER
ORDER BY ts DESC
LIMIT {limit:UInt32}""",
    # Dead letters are stamped with wall-clock time (not event time): the last 7 days.
    "dlq": """
SELECT reason_class, count() AS records, max(failed_at) AS last_seen
FROM {db}.dlq
WHERE failed_at >= now() - INTERVAL 7 DAY
GROUP BY reason_class
ORDER BY records DESC""",
    "incident": """
SELECT incident_id, entity_type, entity_id, api_key_ids, severity, score, reasons, events_seen, detector,
       opened_at, updated_at, updates
FROM {db}.incidents
WHERE incident_id = {incident_id:String}""",
    "incident_versions": """
SELECT DISTINCT version, ts, severity, round(score, 3) AS score, events_seen, length(api_key_ids) AS members,
       reasons
FROM {db}.alert_history
WHERE alert_id = {incident_id:String}
ORDER BY version""",
    "incident_members": """
SELECT api_key_id, toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS t,
       round(maxMerge(score_max), 4) AS max_score, countMerge(events) AS events,
       round(avgMerge(style_avg), 4) AS extraction_share
FROM {db}.{table}
WHERE api_key_id IN {keys:Array(String)} AND bucket >= {t0:DateTime} AND bucket < {t1:DateTime}
GROUP BY api_key_id, t
ORDER BY api_key_id, t""",
    # Each member's own evidence over the incident's window, from the events rows (features only):
    # a content cohort names members by content fit, so on-call looks at its quietest members
    # (few requests at a person's pace) before acting on every key (docs/runbook.md).
    "incident_member_evidence": """
SELECT api_key_id, events, first_seen, last_seen,
       if(events > 1, round(arrayReduce('median', gaps_ms) / 1000, 1), NULL) AS median_gap_s,
       if(events > 1, round(arrayCount(gap -> gap < 60000, gaps_ms) / (events - 1), 3), NULL) AS gaps_under_a_minute,
       mean_output_tokens, topics, extraction_share, max_score
FROM (
    SELECT api_key_id, count() AS events, min(ts) AS first_seen, max(ts) AS last_seen,
           arrayPopFront(arrayDifference(arraySort(groupArray(toUnixTimestamp64Milli(ts))))) AS gaps_ms,
           toUInt32(round(avg(output_tokens))) AS mean_output_tokens, uniqExact(topic_bucket) AS topics,
           round(avg(toFloat64(extraction_style)), 3) AS extraction_share, round(max(toFloat64(score)), 3) AS max_score
    FROM {db}.events
    WHERE api_key_id IN {keys:Array(String)} AND ts >= {t0:DateTime} AND ts < {t1:DateTime}
    GROUP BY api_key_id
)
ORDER BY events, api_key_id""",
    "data_range": """
SELECT min(bucket) AS first, max(bucket) AS last, count() AS buckets FROM {db}.key_hour""",
    "orgs": """
SELECT DISTINCT org_id FROM {db}.key_hour ORDER BY org_id LIMIT 200""",
}


def panel_sql(name: str, db: str, table: str = "key_minute") -> str:
    """The statement of one panel with its database and table filled in (parameters left)."""
    if table not in ("key_minute", "key_hour"):
        raise ValueError(f"not a rollup table: {table}")
    sql = PANEL_SQL[name].replace("ROLLUP_FILTER", ROLLUP_FILTER).replace("INCIDENT_FILTER", INCIDENT_FILTER)
    return sql.replace("{db}", db).replace("{table}", table).strip()


# Member keys read per incident: the incident page's member table and the evidence bundle's
# per-key rows (a router action page holds as many).
MAX_MEMBER_ROWS = 500
_NAME = re.compile(r"^[A-Za-z0-9_.:@/+=-]{0,200}$")
_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


class BadFilter(ValueError):
    """A filter value the dashboard does not accept (answered with 400)."""


def check_name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not _NAME.match(value):
        raise BadFilter(f"{what}: letters, digits and _.:@/+=- only, at most 200")
    return value


def parse_time(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"{what}: an ISO date-time, e.g. 2026-02-01T00:00") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed.replace(microsecond=0)


@dataclass(frozen=True)
class Filters:
    """Validated dashboard filters: naive UTC times, a bucket step and the rollup to read."""

    t0: datetime
    t1: datetime
    org: str = ""
    key: str = ""
    range_name: str = ""
    step: int = field(init=False)
    table: str = field(init=False)

    def __post_init__(self) -> None:
        if self.t1 <= self.t0:
            raise BadFilter("the end of the time range must be after its start")
        if self.t1 - self.t0 > timedelta(days=400):
            raise BadFilter("time range longer than 400 days")
        span = (self.t1 - self.t0).total_seconds()
        step = next((s for s in _STEPS if span / s <= 240), _STEPS[-1])
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "table", "key_minute" if step < 3600 else "key_hour")

    def params(self) -> dict:
        return {"t0": self.t0, "t1": self.t1, "org": self.org, "key": self.key, "step": self.step}

    def query_string(self, **override) -> str:
        from urllib.parse import urlencode

        values = {"org": self.org, "key": self.key, "from": self.t0.isoformat(timespec="minutes"),
                  "to": self.t1.isoformat(timespec="minutes")}
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v})


class DashboardQueries:
    """Runs the panel statements; one query at a time per client (chDB shares one engine)."""

    def __init__(self, client, database: str = "distillguard") -> None:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", database):
            raise ValueError(f"bad database name {database!r}")
        self.client = client
        self.db = database
        self._lock = threading.Lock()

    def rows(self, name: str, params: dict, table: str = "key_minute") -> list[dict]:
        sql = panel_sql(name, self.db, table)
        with self._lock:
            result = self.client.query(sql, parameters=params)
        return [dict(zip(result.column_names, row)) for row in result.result_rows]

    # -- filters --------------------------------------------------------------------------
    def data_range(self) -> tuple[datetime | None, datetime | None]:
        row = self.rows("data_range", {})[0]
        if not row["buckets"]:
            return None, None
        return _naive(row["first"]), _naive(row["last"]) + timedelta(hours=1)

    def orgs(self) -> list[str]:
        return [r["org_id"] for r in self.rows("orgs", {})]

    def filters(self, query: dict) -> Filters:
        """Validated filters from a request's query string; windows end at the newest data by default."""
        org = check_name(query.get("org", ""), "org")
        key = check_name(query.get("key", ""), "key")
        range_name = query.get("range", "")
        if range_name and range_name not in RANGES and range_name != "all":
            raise BadFilter(f"range: one of {', '.join([*RANGES, 'all'])}")
        first, last = self.data_range()
        now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        anchor = last or now
        t1 = parse_time(query["to"], "to") if query.get("to") else anchor
        if range_name == "all" and first and first < t1:
            t0 = first
        elif not range_name and not query.get("from"):
            # Default: all the stored data when it spans a week at most, else its last day.
            t0 = first if first and timedelta(0) < t1 - first <= timedelta(days=7) else t1 - timedelta(days=1)
        elif range_name:
            t0 = t1 - timedelta(seconds=RANGES[range_name])
        else:
            t0 = parse_time(query["from"], "from")
        return Filters(t0=t0, t1=t1, org=org, key=key, range_name=range_name)

    # -- panels -----------------------------------------------------------------------------
    def top_keys(self, f: Filters, limit: int = 15) -> list[dict]:
        return self.rows("top_keys", {**f.params(), "limit": limit}, f.table)

    def top_clusters(self, f: Filters, limit: int = 10) -> list[dict]:
        return self.rows("top_clusters", {**f.params(), "limit": limit})

    def score_over_time(self, f: Filters, series: int = 6) -> list[dict]:
        return self.rows("score_over_time", {**f.params(), "series": series}, f.table)

    def extraction_share(self, f: Filters) -> list[dict]:
        return self.rows("extraction_share", f.params(), f.table)

    def campaign_timeline(self, f: Filters, limit: int = 20) -> list[dict]:
        return self.rows("campaign_timeline", {**f.params(), "limit": limit})

    def alert_volume(self, f: Filters) -> list[dict]:
        return self.rows("alert_volume", f.params())

    def exculpated(self, f: Filters, limit: int = 20) -> list[dict]:
        return self.rows("exculpated", {**f.params(), "limit": limit})

    def dlq(self) -> list[dict]:
        return self.rows("dlq", {})

    def incident(self, incident_id: str) -> dict | None:
        incident_id = check_name(incident_id, "incident")
        found = self.rows("incident", {"incident_id": incident_id})
        if not found:
            return None
        incident = found[0]
        incident["reasons"] = _json_list(incident["reasons"])
        versions = self.rows("incident_versions", {"incident_id": incident_id})
        for v in versions:
            v["reasons"] = _json_list(v["reasons"])
        opened, updated = _naive(incident["opened_at"]), _naive(incident["updated_at"])
        window = Filters(t0=opened - timedelta(hours=2), t1=updated + timedelta(hours=2))
        named = list(incident["api_key_ids"])[:MAX_MEMBER_ROWS]  # the member table's keys
        keys = named[:20]  # the plot's
        members = self.rows("incident_members", {"keys": keys, "t0": window.t0, "t1": window.t1,
                                                 "step": window.step}, window.table) if keys else []
        evidence = self.rows("incident_member_evidence", {"keys": named, "t0": window.t0, "t1": window.t1}) \
            if named else []
        return {"incident": incident, "versions": versions, "members": members, "window": window,
                "member_keys": named, "member_evidence": evidence}


def _naive(value) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _json_list(text: str) -> list:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []
