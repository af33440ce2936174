"""Router lifecycle against local PagerDuty and Slack receivers: auto-resolve after quiet,
snoozes, maintenance windows, allowlist, per-target rate limits, reopen after false positive."""
from __future__ import annotations

import re
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from receivers import PagerDutyReceiver, RouterRun, SlackReceiver, make_alert  # noqa: E402

SUFFIX = uuid.uuid4().hex[:6]
ROUTES = """
targets:
  pagerduty: {{type: pagerduty, routing_key_env: TEST_PD_ROUTING_KEY, url: "{pd}/v2/enqueue"}}
  slack: {{type: slack, webhook_url_env: TEST_SLACK_WEBHOOK_URL}}
  slack-limited: {{type: slack, webhook_url_env: TEST_SLACK_WEBHOOK_URL, rate_limit: {{per_minute: 60, burst: 1}}}}
  slack-grouped: {{type: slack, webhook_url_env: TEST_SLACK_WEBHOOK_URL, group_wait_s: 1.5}}
routes:
  - {{match: {{org: [burst-org]}}, targets: [slack-limited]}}
  - {{match: {{org: [group-org]}}, targets: [slack-grouped]}}
  - {{targets: [pagerduty, slack]}}
delivery: {{timeout_s: 2.0, max_attempts: 3, backoff_base_s: 0.1, backoff_max_s: 0.3}}
lifecycle: {{auto_resolve_after_s: 4, tick_s: 0.5, resolved_ttl_s: 600, false_positive_ttl_s: 600}}
snoozes:
  - {{entity: "key:snoozed-{suffix}", until: "{later}"}}
maintenance:
  - {{start: "{earlier}", end: "{later}", match: {{severity: [info]}}, targets: [pagerduty], reason: upgrade}}
allowlist: {{entities: ["key:allowed-{suffix}"]}}
"""


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory):
    key = "R" + uuid.uuid4().hex[:31]
    pd, slack = PagerDutyReceiver(key).start(), SlackReceiver().start()
    now = datetime.now(timezone.utc)
    routes = ROUTES.format(pd=pd.url, suffix=SUFFIX, earlier=(now - timedelta(hours=1)).isoformat(),
                           later=(now + timedelta(hours=1)).isoformat())
    run = RouterRun(broker, tmp_path_factory.mktemp("router-life"), routes,
                    {"TEST_PD_ROUTING_KEY": key, "TEST_SLACK_WEBHOOK_URL": slack.webhook_url})
    run.start()
    yield {"run": run, "pd": pd, "slack": slack}
    run.stop()
    pd.stop()
    slack.stop()


def test_router_pagerduty_auto_resolves_a_quiet_incident(stack):
    pd, slack, run = stack["pd"], stack["slack"], stack["run"]
    entity = f"quiet-{uuid.uuid4().hex[:6]}"
    run.send_alerts([make_alert(entity, severity="warning")])
    pd.wait(lambda: pd.actions_for(entity) == ["trigger"], what="trigger")
    started = time.monotonic()
    pd.wait(lambda: pd.actions_for(entity) == ["trigger", "resolve"], timeout=20, what="auto-resolve")
    assert time.monotonic() - started >= 2.5  # not before the quiet period (4 s from the alert)
    slack.wait(lambda: any(entity in m["text"] and "auto-resolved" in m["text"] for m in slack.messages),
               what="slack resolved message")


def test_router_pagerduty_snooze_maintenance_and_allowlist_hold_pages(stack):
    pd, slack, run = stack["pd"], stack["slack"], stack["run"]
    run.send_alerts([make_alert(f"snoozed-{SUFFIX}", severity="critical", score=0.9),
                     make_alert(f"allowed-{SUFFIX}", severity="critical", score=0.9),
                     make_alert(f"maint-{SUFFIX}", severity="info", score=0.3),
                     make_alert(f"marker-{SUFFIX}", severity="warning")])
    pd.wait(lambda: pd.actions_for(f"marker-{SUFFIX}"), what="the marker alert (sent last)")
    slack.wait(lambda: any(f"maint-{SUFFIX}" in m["text"] for m in slack.messages), timeout=20,
               what="slack still gets the info alert during PagerDuty maintenance")
    time.sleep(1.0)
    assert pd.actions_for(f"snoozed-{SUFFIX}") == []
    assert pd.actions_for(f"maint-{SUFFIX}") == []
    assert pd.actions_for(f"allowed-{SUFFIX}") == []
    assert not any(f"allowed-{SUFFIX}" in m["text"] for m in slack.messages)
    metrics = run.metrics()
    assert re.search(r'distillguard_router_deferred_total\{reason="snoozed",target="pagerduty",'
                     r'type="pagerduty"\} [1-9]', metrics)
    assert re.search(r'distillguard_router_deferred_total\{reason="maintenance",target="pagerduty",'
                     r'type="pagerduty"\} [1-9]', metrics)
    assert re.search(r'distillguard_router_incident_changes_total\{change="allowlisted"\} [1-9]', metrics)


def test_router_slack_rate_limit_defers_without_dropping(stack):
    slack, run = stack["slack"], stack["run"]
    entities = [f"burst-{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
    run.send_alerts([make_alert(e, severity="warning", org_id="burst-org") for e in entities])
    slack.wait(lambda: all(any(e in m["text"] and "New incident" in m["text"] for m in slack.messages)
                           for e in entities), timeout=30, what="all three messages")
    with slack.lock:
        times = sorted(r["at"] for r in slack.requests if any(e in r["body"].decode() and "New incident" in
                                                             r["body"].decode() for e in entities))
    assert len(times) == 3  # none dropped, none doubled
    assert times[-1] - times[0] >= 1.5  # 1 a second after a burst of 1: spread over >= ~2 s
    assert re.search(r'distillguard_router_deferred_total\{reason="rate_limit",target="slack-limited",'
                     r'type="slack"\} [1-9]', run.metrics())


def test_router_pagerduty_false_positive_mutes_then_new_incident_reopens(stack):
    pd, run = stack["pd"], stack["run"]
    entity = f"fp-{uuid.uuid4().hex[:6]}"
    run.send_alerts([make_alert(entity, severity="warning")])
    pd.wait(lambda: pd.actions_for(entity) == ["trigger"], what="trigger")
    run.feedback("key", entity, "false_positive", reason="customer's eval harness")
    pd.wait(lambda: pd.actions_for(entity) == ["trigger", "resolve"], what="resolve on false positive")
    run.send_alerts([make_alert(entity, severity="critical", score=0.95, n=2)])
    time.sleep(2.0)
    assert pd.actions_for(entity) == ["trigger", "resolve"]  # muted: no page for a known false positive
    assert [d for d in pd.pages if entity in d] == [f"dg:key:{entity}:1"]


def test_router_slack_groups_new_incidents_into_one_message(stack):
    slack, run = stack["slack"], stack["run"]
    entities = [f"grp-{i}-{uuid.uuid4().hex[:4]}" for i in range(4)]
    run.send_alerts([make_alert(e, severity="critical" if i == 2 else "warning", org_id="group-org")
                     for i, e in enumerate(entities)])
    message = slack.wait(lambda: next((m for m in slack.messages if all(e in m["text"] for e in entities)), None),
                         timeout=20, what="one message naming all four incidents")
    assert message["text"].startswith(":rotating_light: 4 new incidents")
    assert len(message["blocks"]) == 5 and "Open in dashboard" in str(message["blocks"][1])
    time.sleep(1.0)
    mine = [m for m in slack.messages if any(e in m["text"] for e in entities) and "Resolved" not in m["text"]]
    assert mine == [message]  # no separate post per incident


def test_router_pagerduty_snooze_command_holds_pages_until_it_ends(stack):
    pd, run = stack["pd"], stack["run"]
    entity = f"snz-{uuid.uuid4().hex[:6]}"
    until = time.time() + 2.5
    run.feedback("key", entity, "snooze", reason="load test", until=until)
    deadline = time.monotonic() + 20
    while f"key:{entity} snoozed until" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    run.send_alerts([make_alert(entity, severity="critical", score=0.9)])
    pd.wait(lambda: pd.actions_for(entity) == ["trigger"], timeout=20, what="the page once the snooze ended")
    paged_at = next(r["at"] for r in pd.requests if entity in r["body"].decode())
    assert paged_at >= until  # held while snoozed, sent (not dropped) after
