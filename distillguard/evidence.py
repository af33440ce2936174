"""``distillguard evidence INCIDENT --out DIR``: a forensic bundle for one incident, from ClickHouse.

The bundle (``evidence.json`` + ``summary.md``) holds the incident's timeline (every alert
version), its member keys, the signals behind it, per-key aggregates and activity (volume,
first/last seen, models, endpoints, networks, tokens, hourly score), and the on-call
feedback recorded for it. No prompt text: distillguard never stores any (the ``events``
table keeps ``prompt_chars`` only), so ``--include-prompts`` cannot add text either; the
bundle says so rather than pretending.

chDB is one process per data directory: run this against a directory no running worker has
open (a copy, or after stopping the worker), or against a ClickHouse server
(``DG_CLICKHOUSE_URL``).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from .contracts.alert import iso_time
from .errors import DistillguardError
from .sinks.queries import MAX_MEMBER_ROWS

MAX_HOURS = 2000


class EvidenceError(DistillguardError):
    """The incident is unknown, or the store cannot be read."""


def incident_alert_id(reference: str) -> tuple[str, str]:
    """Normalise what an on-call has in hand: an alert id (``key:K:1``), a router dedup key
    (``dg:key:K:1`` or ``dg:key:K:1:r2``) or an entity (``key:K``, ``cluster:C``).

    Returns ``(column, value)``: match on ``alert_id``, or on the entity (latest incident).
    """
    ref = reference.strip()
    if ref.startswith("dg:"):
        ref = re.sub(r":r\d+$", "", ref[3:])
    kind, _, rest = ref.partition(":")
    if kind == "key" and re.search(r":\d+$", rest):
        return "alert_id", ref
    if kind in ("cluster", "account") and ref.count(":") == 1:
        return "alert_id", ref  # cluster and account alert ids are cluster:ID / account:ID
    if kind in ("key", "cluster", "account") and rest:
        return "entity", ref
    return "alert_id", ref


def _rows(client, sql: str, parameters: dict | None = None) -> list[dict]:
    result = client.query(sql, parameters=parameters or {})
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def _plain(value):
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def collect(client, db: str, reference: str, *, include_prompts: bool = False) -> dict:
    """Read everything the bundle holds (pure SQL reads; no writes)."""
    column, value = incident_alert_id(reference)
    if column == "entity":
        entity_type, _, entity_id = value.partition(":")
        found = _rows(client, f"SELECT alert_id FROM {db}.alerts FINAL WHERE entity_type = {{t:String}} "
                              f"AND entity_id = {{e:String}} ORDER BY ts DESC LIMIT 1",
                      {"t": entity_type, "e": entity_id})
        if not found:
            raise EvidenceError(f"no incident for {value}")
        value = found[0]["alert_id"]
    tables = {r["name"] for r in _rows(client, "SELECT name FROM system.tables WHERE database = {d:String}",
                                       {"d": db})}
    history = "alert_history" if "alert_history" in tables else "alerts"
    timeline = _rows(client, f"""
        SELECT DISTINCT version, ts, severity, score, events_seen, api_key_ids, reasons, detector,
               entity_type, entity_id
        FROM {db}.{history} WHERE alert_id = {{id:String}} ORDER BY version, ts""", {"id": value})
    if not timeline:
        raise EvidenceError(f"no incident {value!r} in {db}")
    latest = timeline[-1]
    keys = sorted({k for row in timeline for k in row["api_key_ids"]})[:MAX_MEMBER_ROWS]
    per_key = _rows(client, f"""
        SELECT api_key_id, any(account_id) AS account_id, countMerge(events) AS events,
               min(bucket) AS first_hour, max(bucket) AS last_hour,
               round(maxMerge(score_max), 4) AS max_score, round(avgMerge(score_avg), 4) AS avg_score,
               round(avgMerge(style_avg), 4) AS extraction_share, uniqMerge(topics) AS topics,
               uniqMerge(templates) AS templates, sumMerge(input_tokens) AS input_tokens,
               sumMerge(output_tokens) AS output_tokens, maxMerge(alerting_max) AS alerting
        FROM {db}.key_hour WHERE api_key_id IN {{keys:Array(String)}}
        GROUP BY api_key_id ORDER BY events DESC""", {"keys": keys})
    activity = _rows(client, f"""
        SELECT api_key_id, min(ts) AS first_seen, max(ts) AS last_seen, count() AS events,
               groupUniqArray(10)(model) AS models, groupUniqArray(10)(endpoint) AS endpoints,
               groupUniqArray(10)(org_id) AS orgs, groupUniqArray(20)(asn) AS asns,
               groupUniqArray(20)(country) AS countries, round(avg(prompt_chars)) AS avg_prompt_chars,
               countIf(status >= 400) AS errors
        FROM {db}.events WHERE api_key_id IN {{keys:Array(String)}}
        GROUP BY api_key_id ORDER BY api_key_id""", {"keys": keys})
    hourly = _rows(client, f"""
        SELECT bucket AS hour, countMerge(events) AS events, round(maxMerge(score_max), 4) AS max_score,
               round(avgMerge(style_avg), 4) AS extraction_share, uniqMerge(topics) AS topics
        FROM {db}.key_hour WHERE api_key_id IN {{keys:Array(String)}}
        GROUP BY bucket ORDER BY bucket LIMIT {MAX_HOURS}""", {"keys": keys})
    feedback = []
    if "feedback" in tables:
        feedback = _rows(client, f"""
            SELECT feedback_id, ts, action, reason, actor FROM {db}.feedback FINAL
            WHERE entity_type = {{t:String}} AND entity_id = {{e:String}} ORDER BY ts""",
                         {"t": latest["entity_type"], "e": latest["entity_id"]})
    for row in timeline:
        row["reasons"] = json.loads(row["reasons"]) if isinstance(row["reasons"], str) else row["reasons"]
    return _plain({
        "schema": "distill.evidence.v1",
        "incident": value,
        "generated_at": datetime.now(timezone.utc),
        "entity": {"type": latest["entity_type"], "id": latest["entity_id"]},
        "severity": latest["severity"],
        "score": latest["score"],
        "detector": latest["detector"],
        "signals": latest["reasons"],
        "member_keys": keys,
        "timeline": [{k: v for k, v in row.items() if k not in ("entity_type", "entity_id")} for row in timeline],
        "keys": per_key,
        "activity": activity,
        "hourly": hourly,
        "feedback": feedback,
        "prompt_text": ("requested, but distillguard stores no prompt text (only prompt_chars); none included"
                        if include_prompts else "not included"),
    })


def summary_markdown(bundle: dict) -> str:
    lines = [f"# Evidence: incident `{bundle['incident']}`", "",
             f"* entity: {bundle['entity']['type']} `{bundle['entity']['id']}`",
             f"* severity: **{bundle['severity']}**, score {bundle['score']}, detector {bundle['detector']}",
             f"* member keys: {len(bundle['member_keys'])}",
             f"* opened {bundle['timeline'][0]['ts']}, last update {bundle['timeline'][-1]['ts']}, "
             f"{len(bundle['timeline'])} alert version(s)",
             f"* prompt text: {bundle['prompt_text']}", "", "## Signals", ""]
    for r in bundle["signals"]:
        lines.append(f"* {r['signal']}: {r.get('value')} (baseline {r.get('baseline')}, weight {r.get('weight')})")
    lines += ["", "## Timeline", "", "| version | ts | severity | score | events seen | keys |",
              "|---|---|---|---|---|---|"]
    for row in bundle["timeline"]:
        lines.append(f"| {row['version']} | {row['ts']} | {row['severity']} | {row['score']} | "
                     f"{row['events_seen']} | {len(row['api_key_ids'])} |")
    lines += ["", "## Member keys", "", "| key | account | events | first hour | last hour | max score | "
              "extraction share | topics | templates | output tokens |", "|---|---|---|---|---|---|---|---|---|---|"]
    for k in bundle["keys"]:
        lines.append(f"| `{k['api_key_id']}` | {k['account_id']} | {k['events']} | {k['first_hour']} | "
                     f"{k['last_hour']} | {k['max_score']} | {k['extraction_share']} | {k['topics']} | "
                     f"{k['templates']} | {k['output_tokens']} |")
    if bundle["feedback"]:
        lines += ["", "## Feedback", ""]
        lines += [f"* {f['ts']} {f['action']} by {f['actor']}: {f['reason']}" for f in bundle["feedback"]]
    return "\n".join(lines) + "\n"


def write_evidence(reference: str, out_dir: Path, settings, *, include_prompts: bool = False) -> list[Path]:
    """Write ``evidence.json`` and ``summary.md`` for the incident into ``out_dir``."""
    from distillguard.sinks.clickhouse import make_client

    client = make_client(settings)
    try:
        bundle = collect(client, settings.database, reference, include_prompts=include_prompts)
    finally:
        client.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "evidence.json", out_dir / "summary.md"
    json_path.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(summary_markdown(bundle), encoding="utf-8")
    return [json_path, md_path]
