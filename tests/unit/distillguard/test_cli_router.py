"""``distillguard router`` refuses to start on a bad routes file or bad Alertmanager settings, naming
the problem; ``distillguard routes check`` validates the routing setup."""
from __future__ import annotations

import sys
from pathlib import Path

from distillguard.cli import main
from distillguard.devtools.embedded import free_port

ROOT = Path(__file__).parents[3]


def test_router_refuses_a_stale_routes_file_bad_urls_and_a_missing_file(tmp_path, capsys, monkeypatch):
    routes = tmp_path / "routes.yaml"
    # Receivers and routes moved to Alertmanager: an old routes file is refused, not half-applied.
    routes.write_text("targets:\n  pd: {type: pagerduty, routing_key_env: PD}\nroutes:\n  - {targets: [pd]}\n")
    monkeypatch.setattr(sys, "argv", ["distillguard"])  # main() resets argv for Faust
    assert main(["router", "--routes", str(routes)]) == 2
    err = capsys.readouterr().err
    assert "invalid routes file" in err and "targets" in err
    routes.write_text("lifecycle: {tick_s: 1}\n")
    monkeypatch.setenv("DG_ALERTMANAGER_URLS", "alertmanager:9093")
    assert main(["router", "--routes", str(routes)]) == 2
    assert "not http(s) URLs" in capsys.readouterr().err
    monkeypatch.delenv("DG_ALERTMANAGER_URLS")
    assert main(["router", "--routes", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read routes file" in capsys.readouterr().err


def test_routes_check_names_an_unreachable_replica_without_its_credentials(tmp_path, capsys, monkeypatch):
    routes = tmp_path / "routes.yaml"
    routes.write_text("lifecycle: {tick_s: 1}\n")
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DG_ALERTMANAGER_URLS", f"http://user:s3cret@127.0.0.1:{port}/am")
    monkeypatch.setenv("DG_ALERTMANAGER_TIMEOUT_S", "2")
    assert main(["routes", "check", "--routes", str(routes)]) == 1
    err = capsys.readouterr().err
    assert f"#0 127.0.0.1:{port} not ready: connection error" in err and "s3cret" not in err


def test_routes_check_runs_amtool_on_the_alertmanager_config(tmp_path, capsys, monkeypatch):
    from distillguard.sinks.routing.check import check_alertmanager_config

    assert check_alertmanager_config(ROOT / "deploy" / "alertmanager" / "alertmanager.yml") == []
    broken = tmp_path / "alertmanager.yml"
    broken.write_text("route:\n  receiver: nowhere\nreceivers:\n  - name: somewhere\n")
    problems = check_alertmanager_config(broken)
    assert len(problems) == 1 and "nowhere" in problems[0]
    assert check_alertmanager_config(tmp_path / "absent.yml") == [
        f"Alertmanager config {tmp_path / 'absent.yml'} does not exist"]


def test_a_worker_with_a_bad_setting_stops_at_start_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("DG_PARTITIONS", "0")
    assert main(["worker"]) == 2
    assert "DG_PARTITIONS" in capsys.readouterr().err
