"""Links from a page (PagerDuty, Slack, Alertmanager...) to the incident in Grafana.

The link opens the provisioned dashboard (``deploy/grafana/dashboards/distillguard.json``) by
its uid, with the dashboard's own variables set (``var-key``, ``var-org``) and the time range
around the alert. Only variables the dashboard defines are set: Grafana ignores others, so a
link naming one it lacks would open the unfiltered dashboard. ``tests/unit/sinks/test_dashboard_links.py``
parses the JSON and these links against each other.
"""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit

# The dashboard JSON's "uid" and the names of its template variables.
DASHBOARD_UID = "distillguard-overview"
KEY_VARIABLE = "key"
ORG_VARIABLE = "org"
# Time range shown: the hours before the alert (the campaign's build-up) and a little after.
BEFORE_MS = 6 * 3_600_000
AFTER_MS = 3_600_000


def grafana_root(dashboard_url: str) -> str:
    """The Grafana base URL from ``dashboard_url``: its root, or a former ``…/d/<uid>`` link,
    whose path beyond ``/d/`` is dropped (the uid is the dashboard's, not the setting's)."""
    parts = urlsplit(dashboard_url.rstrip("/"))
    path = parts.path.split("/d/", 1)[0].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


def incident_link(dashboard_url: str, *, entity_type: str, entity_id: str, api_key_ids: list[str],
                  org_id: str | None = None, ts_ms: int | None = None) -> str:
    """The dashboard filtered to the incident's key (a key incident: the key itself; an account
    or cluster: its first member key, whose panels show the campaign's alerts).

    >>> incident_link("http://grafana:3000/d/old", entity_type="cluster", entity_id="c1",
    ...               api_key_ids=["k2", "k9"], org_id="acme", ts_ms=7_200_000)
    'http://grafana:3000/d/distillguard-overview?var-key=k2&var-org=acme&from=3600000&to=10800000'
    """
    key = entity_id if entity_type == "key" else (api_key_ids[0] if api_key_ids else "")
    params = {f"var-{KEY_VARIABLE}": key}
    if org_id:
        params[f"var-{ORG_VARIABLE}"] = org_id
    if ts_ms is not None:
        params.update({"from": str(max(ts_ms - BEFORE_MS, 0)), "to": str(ts_ms + AFTER_MS)})
    return f"{grafana_root(dashboard_url)}/d/{DASHBOARD_UID}?{urlencode(params)}"
