"""How an incident reads to people: a one-line summary, reasons, a dashboard link (pure)."""
from __future__ import annotations

from distillguard.sinks.dashboard_links import incident_link


def summary(n: dict) -> str:
    """One line an on-call reads first.

    >>> summary({"entity_type": "cluster", "entity_id": "c1", "severity": "critical", "score": 0.9, "members": 4})
    '[critical] model extraction suspected: cluster of cluster c1 (score 0.90, 4 keys)'
    """
    what = "cluster of " if n["entity_type"] == "cluster" else ""
    keys = f", {n['members']} keys" if n["members"] > 1 else ""
    return (f"[{n['severity']}] model extraction suspected: {what}{n['entity_type']} {n['entity_id']} "
            f"(score {n['score']:.2f}{keys})")


def reason_lines(n: dict) -> list[str]:
    lines = []
    for r in n.get("reasons") or []:
        base = f" (baseline {r['baseline']})" if r.get("baseline") is not None else ""
        lines.append(f"{r['signal']}: {r.get('value')}{base}")
    return lines


def dashboard_link(dashboard_url: str, n: dict) -> str:
    return incident_link(dashboard_url, entity_type=n["entity_type"], entity_id=n["entity_id"],
                         api_key_ids=n.get("keys") or [], org_id=n.get("org_id"), ts_ms=n.get("alert_ms"))
