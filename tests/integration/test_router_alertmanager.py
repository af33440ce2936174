"""The router hands incidents to two real Alertmanager replicas (Debian ``prometheus-alertmanager``,
not clustered): a page reaches a local webhook through Alertmanager's own routing; a replica
killed and restarted mid-incident has the alert again (the router re-posts every tick); a resolve
reaches both; a snooze is a silence on both and an unsnooze deletes it; quiet incidents
auto-resolve; a false positive resolves and stays quiet; the allowlist holds its entities back."""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from receivers import Alertmanager, AlertmanagerWebhookReceiver, RouterRun, make_alert  # noqa: E402

TOKEN = "t-" + uuid.uuid4().hex
TICK_S = 0.5
# Alertmanager's routing, not ours: warning and critical reach the webhook, info goes nowhere.
CONFIG = """
route:
  receiver: nowhere
  group_by: [entity_type, entity_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['source="distillguard"', 'severity=~"warning|critical"']
      receiver: hook
receivers:
  - name: nowhere
  - name: hook
    webhook_configs:
      - url: {url}/hook
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: "{token}"}}
"""
ROUTES = f"""
lifecycle: {{auto_resolve_after_s: 8, tick_s: {TICK_S}, resolved_ttl_s: 600, false_positive_ttl_s: 600}}
allowlist: {{entities: ["key:allowed-{{suffix}}"]}}
"""
SUFFIX = uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("router-am")
    hook = AlertmanagerWebhookReceiver(TOKEN).start()
    config = CONFIG.format(url=hook.url, token=TOKEN)
    replicas = [Alertmanager(root / f"am-{i}", config).start() for i in range(2)]
    run = RouterRun(broker, root / "router", ROUTES.replace("{suffix}", SUFFIX), [am.url for am in replicas])
    # endsAt 40 ticks (20 s) ahead: an alert gone sooner was resolved, or never re-posted, by the router.
    run.env["DG_ALERTMANAGER_ENDS_AFTER_TICKS"] = "40"
    run.start()
    yield {"run": run, "hook": hook, "replicas": replicas}
    run.stop()
    for am in replicas:
        am.stop()
    hook.stop()


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def entity(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_router_alertmanager_page_reaches_a_webhook_through_alertmanagers_routing(stack):
    run, hook, replicas = stack["run"], stack["hook"], stack["replicas"]
    paged, unrouted = entity("page"), entity("info")
    run.send_alerts([make_alert(paged, severity="critical", score=0.9), make_alert(unrouted, severity="info")])
    for am in replicas:  # the router posted both to each replica ...
        (alert,) = wait_for(lambda: am.active(paged), f"{paged} on {am.url}")
        assert alert["labels"]["dedup_key"] == f"dg:key:{paged}:1" and alert["labels"]["severity"] == "critical"
        assert "model extraction suspected" in alert["annotations"]["summary"]
        wait_for(lambda: am.active(unrouted), f"{unrouted} on {am.url}")
    # ... and each replica's own route tree sent the critical one to the webhook, the info one nowhere.
    firing = hook.wait(lambda: len(hook.for_entity(paged, "firing")) >= 2 and hook.for_entity(paged, "firing"),
                       what="a notification from each replica")
    assert {n["receiver"] for n in firing} == {"hook"}
    assert firing[0]["groupLabels"] == {"entity_type": "key", "entity_id": paged}
    time.sleep(1.5)  # a group_interval: anything for the info alert would have been sent by now
    assert hook.for_entity(unrouted) == [] and not hook.errors


def test_router_alertmanager_replica_killed_mid_incident_has_the_alert_again(stack):
    run, replicas = stack["run"], stack["replicas"]
    name = entity("restart")
    run.send_alerts([make_alert(name, severity="warning")])
    for am in replicas:
        wait_for(lambda: am.active(name), f"{name} on {am.url}")
    killed = replicas[1]
    killed.kill()  # Alertmanager keeps alerts in memory only: this one is gone from it
    killed.start()
    # Re-posted on the next tick (0.5 s); the deadline is loose for a busy machine, and well
    # inside the 20 s endsAt: without re-posting the alert would never come back.
    (alert,) = wait_for(lambda: killed.active(name), "the alert on the restarted replica", timeout=10)
    assert alert["labels"]["dedup_key"] == f"dg:key:{name}:1"
    assert len(replicas[0].active(name)) == 1  # the other replica has it, once


def test_router_alertmanager_resolve_reaches_both_replicas(stack):
    run, hook, replicas = stack["run"], stack["hook"], stack["replicas"]
    name = entity("resolve")
    run.send_alerts([make_alert(name, severity="critical", score=0.9)])
    for am in replicas:
        wait_for(lambda: am.active(name), f"{name} on {am.url}")
    run.feedback("key", name, "resolve", reason="handled")
    for am in replicas:  # explicitly: endsAt was 20 s ahead
        wait_for(lambda: not am.active(name), f"{name} resolved on {am.url}", timeout=10)
    hook.wait(lambda: len(hook.for_entity(name, "resolved")) >= 2, what="a resolved notification from each replica")


def test_router_alertmanager_snooze_is_a_silence_and_unsnooze_deletes_it(stack):
    run, hook, replicas = stack["run"], stack["hook"], stack["replicas"]
    name = entity("snooze")
    run.feedback("key", name, "snooze", reason="load test", until=time.time() + 600)

    def silence_on(am, state="active"):
        return [s for s in am.silences() if s["status"]["state"] == state and
                {(m["name"], m["value"]) for m in s["matchers"]} >= {("entity_type", "key"), ("entity_id", name)}]

    first = {}
    for am in replicas:
        (silence,) = wait_for(lambda: silence_on(am), f"a silence on {am.url}")
        assert silence["createdBy"] == "oncall-test" and "load test" in silence["comment"]
        first[am.url] = silence["id"]
    # A new end replaces the silence (a shorter snooze must not stay as long as the first one).
    run.feedback("key", name, "snooze", reason="load test", until=time.time() + 300)
    for am in replicas:
        wait_for(lambda: [s["id"] for s in silence_on(am, "expired")] == [first[am.url]] and
                 len(silence_on(am)) == 1, f"the silence replaced on {am.url}")
    run.send_alerts([make_alert(name, severity="critical", score=0.9)])
    for am in replicas:
        (alert,) = wait_for(lambda: am.active(name), f"{name} on {am.url}")
        assert alert["status"]["state"] == "suppressed" and alert["status"]["silencedBy"]
    time.sleep(1.5)
    assert hook.for_entity(name) == []  # silenced: nobody paged
    run.feedback("key", name, "unsnooze", reason="done")
    for am in replicas:
        wait_for(lambda: silence_on(am, "expired") and not silence_on(am), f"the silence deleted on {am.url}")
    hook.wait(lambda: len(hook.for_entity(name, "firing")) >= 2, what="the page once unsnoozed")


def test_router_alertmanager_silence_lost_by_a_replica_is_created_again(stack):
    run, replicas = stack["run"], stack["replicas"]
    name = entity("lost")
    run.feedback("key", name, "snooze", reason="maintenance", until=time.time() + 600)
    killed = replicas[0]
    wait_for(lambda: any(m["value"] == name for s in killed.silences() for m in s["matchers"]), "the silence")
    killed.kill()
    for path in (killed.root / "data").glob("*"):
        path.unlink()  # its storage lost too (a new pod)
    killed.start()
    wait_for(lambda: any(m["value"] == name and s["status"]["state"] == "active" for s in killed.silences()
                         for m in s["matchers"]), "the silence created again", timeout=10)


def test_router_alertmanager_quiet_incident_auto_resolves_and_false_positive_stays_quiet(stack):
    run, replicas = stack["run"], stack["replicas"]
    quiet, wrong = entity("quiet"), entity("fp")
    run.send_alerts([make_alert(quiet, severity="warning"), make_alert(wrong, severity="warning")])
    for am in replicas:
        wait_for(lambda: am.active(quiet) and am.active(wrong), f"both on {am.url}")
    run.feedback("key", wrong, "false_positive", reason="customer's eval harness")
    for am in replicas:
        wait_for(lambda: not am.active(wrong), f"{wrong} resolved on {am.url}", timeout=10)
    run.send_alerts([make_alert(wrong, severity="critical", score=0.95, n=2, ts="2026-02-01T11:00:00Z")])
    # auto-resolved 8 s after its last alert, before its 20 s endsAt
    for am in replicas:
        wait_for(lambda: not am.active(quiet), f"{quiet} auto-resolved on {am.url}", timeout=20)
    assert all(not am.active(wrong) for am in replicas)  # a known false positive: not paged again
    incidents = {i["entity_id"]: i for i in run.incidents()}
    assert incidents[quiet]["resolution"].startswith("auto-resolved")


def test_router_alertmanager_allowlisted_entity_is_never_posted(stack):
    run, replicas = stack["run"], stack["replicas"]
    marker = entity("marker")
    run.send_alerts([make_alert(f"allowed-{SUFFIX}", severity="critical"), make_alert(marker, severity="warning")])
    for am in replicas:
        wait_for(lambda: am.active(marker), f"the marker (sent last) on {am.url}")
    assert all(am.alerts(entity_id=f"allowed-{SUFFIX}") == [] for am in replicas)


def test_routes_check_passes_with_both_replicas_and_names_a_dead_one(stack, tmp_path, monkeypatch, capsys):
    from distillguard.cli import main

    replicas = stack["replicas"]
    routes = tmp_path / "routes.yaml"
    routes.write_text("lifecycle: {tick_s: 1}\n")
    monkeypatch.setenv("DG_ALERTMANAGER_URLS", ",".join(am.url for am in replicas))
    config = replicas[0].root / "alertmanager.yml"
    assert main(["routes", "check", "--routes", str(routes), "--alertmanager-config", str(config)]) == 0
    assert "2 Alertmanager replica(s) ready" in capsys.readouterr().out
    dead = Alertmanager(tmp_path / "never-started")
    monkeypatch.setenv("DG_ALERTMANAGER_URLS", f"{replicas[0].url},{dead.url}")
    assert main(["routes", "check", "--routes", str(routes)]) == 1
    assert f"#1 127.0.0.1:{dead.port} not ready" in capsys.readouterr().err


def test_router_alertmanager_hung_replica_holds_back_neither_the_others_nor_the_alerts(broker, tmp_path):
    """One replica accepts connections and never answers (a black-holed pod), one refuses them:
    the live replica still gets every page, resolve and silence, the router keeps reading
    alerts, and the refusing replica is reported once on the failed topic."""
    import socket

    from distillguard.devtools.embedded import free_port

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel completes connections; nobody ever reads or answers them
    live = Alertmanager(tmp_path / "live").start()
    refused = free_port()  # nothing listens there
    run = RouterRun(broker, tmp_path / "router", ROUTES.replace("{suffix}", SUFFIX),
                    [f"http://127.0.0.1:{hung.getsockname()[1]}", f"http://127.0.0.1:{refused}/am", live.url])
    run.env["DG_ALERTMANAGER_TIMEOUT_S"] = "300"  # far longer than this test may wait
    try:
        run.start()
        names = [entity("hung") for _ in range(5)]
        run.send_alerts([make_alert(name, severity="warning") for name in names])
        wait_for(lambda: all(live.active(name) for name in names), "every alert on the live replica")
        run.feedback("key", names[0], "resolve", reason="handled")
        wait_for(lambda: not live.active(names[0]), "the resolve on the live replica")
        later = entity("hung-later")
        run.send_alerts([make_alert(later, severity="critical")])
        wait_for(lambda: live.active(later), "a later alert on the live replica")
        run.feedback("key", later, "snooze", reason="load test", until=time.time() + 600)
        wait_for(lambda: any(m["value"] == later and s["status"]["state"] == "active" for s in live.silences()
                             for m in s["matchers"]), "the snooze's silence on the live replica")
        reports = run.consume("failed")
        assert [(r["replica"], r["event"]) for r in reports] == [(f"#1 127.0.0.1:{refused}", "unreachable")]
        assert reports[0]["last_error"].startswith("connection error") and "/am" not in json.dumps(reports)
    finally:
        run.stop()
        live.stop()
        hung.close()
