"""The router against real receivers: a real Alertmanager, and local servers that speak the
PagerDuty, Opsgenie, Slack and signed-webhook APIs, fail on purpose and dedup like the vendors.

One router process serves the module (its start-up is most of the cost); every test uses its
own entities, so the tests do not see each other's incidents.
"""
from __future__ import annotations

import re
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from receivers import (Alertmanager, OpsgenieReceiver, PagerDutyReceiver, RouterRun,  # noqa: E402
                       SlackReceiver, WebhookReceiver, make_alert)

ROUTES = """
dashboard_url: http://dashboard.test/d/distillguard
targets:
  pagerduty: {{type: pagerduty, routing_key_env: TEST_PD_ROUTING_KEY, url: "{pd}/v2/enqueue"}}
  opsgenie: {{type: opsgenie, api_key_env: TEST_OPSGENIE_KEY, url: "{og}"}}
  slack: {{type: slack, webhook_url_env: TEST_SLACK_WEBHOOK_URL}}
  alertmanager: {{type: alertmanager, url: "{am}"}}
  webhook: {{type: webhook, url: "{hook}/in", secret_env: TEST_WEBHOOK_SECRET}}
routes:
  - {{name: keys, match: {{entity_type: [key]}}, targets: [pagerduty, slack, webhook, alertmanager]}}
  - {{name: clusters, match: {{entity_type: [cluster]}}, targets: [opsgenie, alertmanager]}}
delivery: {{timeout_s: 1.0, max_attempts: 4, backoff_base_s: 0.1, backoff_max_s: 0.4, jitter: 0.5}}
lifecycle: {{auto_resolve_after_s: 3600, tick_s: 0.5}}
actions:
  rules:
    - {{match: {{severity: [critical]}}, action: require_verification}}
    - {{match: {{}}, action: throttle}}
"""


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("router")
    secrets = {"TEST_PD_ROUTING_KEY": "R" + uuid.uuid4().hex[:31], "TEST_OPSGENIE_KEY": str(uuid.uuid4()),
               "TEST_WEBHOOK_SECRET": "whsec-" + uuid.uuid4().hex}
    pd = PagerDutyReceiver(secrets["TEST_PD_ROUTING_KEY"]).start()
    og = OpsgenieReceiver(secrets["TEST_OPSGENIE_KEY"]).start()
    slack = SlackReceiver().start()
    hook = WebhookReceiver(secrets["TEST_WEBHOOK_SECRET"]).start()
    am = Alertmanager(root / "alertmanager").start()
    secrets["TEST_SLACK_WEBHOOK_URL"] = slack.webhook_url
    run = RouterRun(broker, root / "run", ROUTES.format(pd=pd.url, og=og.url, am=am.url, hook=hook.url), secrets)
    router = run.start()
    yield {"run": run, "router": router, "pd": pd, "og": og, "slack": slack, "hook": hook, "am": am,
           "secrets": secrets}
    run.stop()
    am.stop()
    for receiver in (pd, og, slack, hook):
        receiver.stop()


def _entity(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_router_pagerduty_trigger_escalate_ack_resolve(stack):
    pd, run = stack["pd"], stack["run"]
    entity = _entity("pd-life")
    run.send_alerts([make_alert(entity, severity="warning", score=0.6)])
    pd.wait(lambda: pd.actions_for(entity) == ["trigger"], what="first trigger")
    # Same severity, small score change: an update, not a notification.
    run.send_alerts([make_alert(entity, severity="warning", score=0.62),
                     make_alert(entity, severity="critical", score=0.9)])
    pd.wait(lambda: pd.actions_for(entity) == ["trigger", "trigger"], what="escalation")
    run.feedback("key", entity, "ack", reason="investigating")
    pd.wait(lambda: pd.actions_for(entity) == ["trigger", "trigger", "acknowledge"], what="acknowledge")
    run.feedback("key", entity, "resolve", reason="keys rotated")
    pd.wait(lambda: pd.actions_for(entity)[-1:] == ["resolve"], what="resolve")
    events = [e for e in pd.events if entity in e["dedup_key"]]
    assert {e["dedup_key"] for e in events} == {f"dg:key:{entity}:1"}  # one incident, one dedup key
    assert [d for d in pd.pages if entity in d] == [f"dg:key:{entity}:1"]  # paged once
    assert events[1]["payload"]["severity"] == "critical"
    details = events[0]["payload"]["custom_details"]
    assert details["reasons"][0].startswith("extraction_style_share") and details["incident"] == f"key:{entity}:1"
    assert events[0]["links"][0]["href"].startswith("http://dashboard.test/d/distillguard-overview?")
    assert pd.incidents[f"dg:key:{entity}:1"] == "resolved"
    assert not pd.errors


def test_router_pagerduty_retries_500s_and_timeouts_without_a_second_page(stack):
    pd, run = stack["pd"], stack["run"]
    entity = _entity("pd-flaky")
    pd.fault(entity, "500", 2)
    pd.fault(entity, "hang", 1, hang_s=1.5)  # past the 1 s timeout; PagerDuty still processes it
    run.send_alerts([make_alert(entity, severity="critical", score=0.95)])
    attempts = pd.wait(lambda: [r for r in pd.requests if entity in r["body"].decode()
                                and "fault" not in r] or None, what="a successful attempt")
    time.sleep(1.0)  # let a stray extra retry show up if there were one
    tried = [r for r in pd.requests if entity in r["body"].decode()]
    assert [r.get("fault") for r in tried] == ["500", "500", "hang", None]
    assert len(attempts) == 1
    # The timed-out attempt was processed too: two trigger events, one page (same dedup_key).
    assert pd.actions_for(entity) == ["trigger", "trigger"]
    assert [d for d in pd.pages if entity in d] == [f"dg:key:{entity}:1"]
    retries = re.search(r'distillguard_router_retries_total\{target="pagerduty",type="pagerduty"\} (\S+)',
                        run.metrics())
    assert retries and float(retries.group(1)) >= 3


def test_router_pagerduty_exhausted_retries_go_to_the_failed_topic(stack):
    pd, run = stack["pd"], stack["run"]
    entity = _entity("pd-down")
    pd.fault(entity, "500", 100)
    run.send_alerts([make_alert(entity, severity="critical", score=0.97)])
    failed = [r for r in run.consume("failed", expect=1, timeout=30) if entity in r["dedup_key"]]
    assert len(failed) == 1
    record = failed[0]
    assert record["target"] == "pagerduty" and record["event"] == "trigger" and record["attempts"] == 4
    assert record["dedup_key"] == f"dg:key:{entity}:1" and record["last_error"].startswith("HTTP 500")
    assert stack["secrets"]["TEST_PD_ROUTING_KEY"] not in str(record)
    time.sleep(1.5)  # ticks pass: a given-up notification is not retried forever
    assert len([r for r in pd.requests if entity in r["body"].decode()]) == 4
    text = run.metrics()
    assert re.search(r'distillguard_router_failed_total\{event="trigger",target="pagerduty",type="pagerduty"\} '
                     r'[1-9]', text)
    # The other targets of the same incident were delivered regardless.
    stack["hook"].wait(lambda: any(d["dedup_key"] == f"dg:key:{entity}:1" for d in stack["hook"].deliveries),
                       what="webhook delivery of the same incident")


def test_router_opsgenie_create_escalate_ack_close(stack):
    og, run = stack["og"], stack["run"]
    entity = _entity("og-cluster")
    keys = [f"{entity}-k{i}" for i in range(4)]
    og.fault(entity, "500", 1)
    run.send_alerts([make_alert(entity, entity_type="cluster", severity="warning", score=0.7, keys=keys)])
    alias = f"dg:cluster:{entity}:1"
    og.wait(lambda: alias in og.alerts, what="created alert")
    run.send_alerts([make_alert(entity, entity_type="cluster", severity="critical", score=0.8,
                                keys=keys + [f"{entity}-k{i}" for i in range(4, 8)])])
    og.wait(lambda: og.alerts[alias]["priority"] == "P1", what="priority raised")
    run.feedback("cluster", entity, "ack")
    og.wait(lambda: og.alerts[alias]["acknowledged"], what="acknowledge")
    run.feedback("cluster", entity, "resolve")
    og.wait(lambda: og.alerts[alias]["status"] == "closed", what="close")
    assert [c for c in og.calls if c[1] == alias] == [("create", alias), ("create", alias), ("priority", alias),
                                                      ("acknowledge", alias), ("close", alias)]
    assert og.pages.count(alias) == 1 and og.alerts[alias]["count"] == 2  # re-create was deduplicated
    assert not og.errors


def test_router_slack_message_has_reasons_and_dashboard_link(stack):
    slack, run = stack["slack"], stack["run"]
    entity = _entity("slack")
    slack.fault(entity, "500", 1)
    run.send_alerts([make_alert(entity, severity="warning", score=0.66)])
    message = slack.wait(lambda: next((m for m in slack.messages if entity in m["text"]), None), what="message")
    assert message["text"].startswith(":warning: New incident: [warning] model extraction suspected")
    blocks = str(message["blocks"])
    assert "extraction_style_share: 0.82 (baseline 0.05)" in blocks
    assert "<http://dashboard.test/d/distillguard-overview?" in blocks and "Open in dashboard" in blocks
    run.feedback("key", entity, "resolve", reason="benign eval")
    done = slack.wait(lambda: next((m for m in slack.messages if entity in m["text"] and "Resolved" in m["text"]),
                                   None), what="resolved message")
    assert "benign eval" in done["text"]
    assert len([m for m in slack.messages if entity in m["text"]]) == 2  # the 500 was retried once, not doubled
    assert not slack.errors


def test_router_webhook_is_signed_and_retried_after_timeout(stack):
    hook, run = stack["hook"], stack["run"]
    entity = _entity("hook")
    hook.fault(entity, "hang", 1, hang_s=1.5)
    run.send_alerts([make_alert(entity, severity="warning", score=0.61)])
    hook.wait(lambda: [d for d in hook.deliveries if d["dedup_key"] == f"dg:key:{entity}:1"], what="delivery")
    time.sleep(0.5)
    deliveries = [d for d in hook.deliveries if d["dedup_key"] == f"dg:key:{entity}:1"]
    # The hung request was processed late and the retry carried the same delivery id: the
    # receiver can drop the repeat by X-Distillguard-Delivery.
    assert {d["id"] for d in deliveries} == {f"dg:key:{entity}:1:trigger:1"}
    assert len(deliveries) == 2
    assert deliveries[0]["incident"]["entity_id"] == entity
    assert not hook.errors  # every request carried a valid signature and fresh timestamp


def test_router_alertmanager_fires_escalates_and_resolves(stack):
    am, run = stack["am"], stack["run"]
    entity = _entity("am")

    def active(**labels):
        return [a for a in am.alerts(entity_id=entity, **labels) if a["status"]["state"] == "active"]

    run.send_alerts([make_alert(entity, severity="warning", score=0.6)])
    deadline = time.monotonic() + 30
    while not active() and time.monotonic() < deadline:
        time.sleep(0.2)
    [alert] = active()
    assert alert["labels"]["alertname"] == "DistillationCampaign" and alert["labels"]["severity"] == "warning"
    assert alert["labels"]["dedup_key"] == f"dg:key:{entity}:1"
    assert alert["annotations"]["incident"] == f"key:{entity}:1"
    assert "extraction_style_share" in alert["annotations"]["description"]
    assert alert["generatorURL"].startswith("http://dashboard.test/")

    run.send_alerts([make_alert(entity, severity="critical", score=0.9)])
    deadline = time.monotonic() + 30
    while not active(severity="critical") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [a["labels"]["severity"] for a in active()] == ["critical"]  # the warning series ended

    run.feedback("key", entity, "resolve")
    deadline = time.monotonic() + 30
    while active() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert active() == []


def test_router_actions_once_per_incident_version(stack):
    run = stack["run"]
    entity = _entity("act")
    run.send_alerts([make_alert(entity, severity="warning", score=0.6)])
    stack["pd"].wait(lambda: stack["pd"].actions_for(entity), what="trigger")
    run.send_alerts([make_alert(entity, severity="warning", score=0.61),
                     make_alert(entity, severity="critical", score=0.9)])
    stack["pd"].wait(lambda: len(stack["pd"].actions_for(entity)) == 2, what="escalation")
    run.feedback("key", entity, "false_positive", reason="internal red team")
    deadline = time.monotonic() + 30
    mine: list = []
    while time.monotonic() < deadline:
        mine = [a for a in run.consume("actions") if a["entity_id"] == entity]
        if any(a["action"] == "release" for a in mine):
            break
        time.sleep(0.5)
    assert [(a["version"], a["action"]) for a in mine] == [(1, "throttle"), (2, "require_verification"),
                                                           (2, "release")]
    assert len({a["action_id"] for a in mine}) == 3
    assert mine[0]["api_key_ids"] == [entity] and mine[0]["schema"] == "distill.action.v1"


def test_router_metrics_and_logs_never_show_secrets(stack):
    run, router = stack["run"], stack["router"]
    # Its own deliveries to every target (a key alert and a cluster alert), so the test holds
    # when it runs alone, not only after the tests above it have delivered.
    entity = _entity("secrets")
    run.send_alerts([make_alert(entity, severity="warning"),
                     make_alert(entity, entity_type="cluster", keys=[entity, entity + "-2"], severity="warning")])
    targets = ("pagerduty", "opsgenie", "slack", "alertmanager", "webhook")

    def delivered_everywhere(text: str) -> bool:
        return all(re.search(rf'distillguard_router_delivered_total\{{event="trigger",target="{target}",'
                             rf'type="{target}"\}} [1-9]', text) for target in targets)

    deadline = time.monotonic() + 60
    while not delivered_everywhere(text := run.metrics()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert delivered_everywhere(text), text[-2000:]
    for target in targets:
        assert f'distillguard_router_delivery_seconds_count{{target="{target}"' in text
    with urllib.request.urlopen(router.url + "/incidents", timeout=5) as resp:
        incidents = resp.read().decode()
    logs = run.logs()
    assert "delivered trigger" in logs  # the log was captured (level info), it just holds no secret
    failed = str(run.consume("failed"))
    for name, value in stack["secrets"].items():
        for where, text_ in (("log", logs), ("metrics", text), ("incidents", incidents), ("failed", failed)):
            assert value not in text_, f"{name} leaked into {where}"
    # The Slack URL's secret part, on its own, is not logged either.
    assert stack["slack"].path.rsplit("/", 1)[1] not in logs
