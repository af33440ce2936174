"""``distillguard router`` refuses to start on a bad routes file or a missing secret, naming it."""
from __future__ import annotations

import sys

from distillguard.cli import main


def test_router_refuses_missing_secret_and_bad_file(tmp_path, capsys, monkeypatch):
    routes = tmp_path / "routes.yaml"
    routes.write_text("targets:\n  pd: {type: pagerduty, routing_key_env: DG_TEST_MISSING_KEY}\n"
                      "routes:\n  - {targets: [pd]}\n")
    monkeypatch.delenv("DG_TEST_MISSING_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", ["distillguard"])  # main() resets argv for Faust
    assert main(["router", "--routes", str(routes)]) == 2
    assert "$DG_TEST_MISSING_KEY" in capsys.readouterr().err
    routes.write_text("targets: {}\nroutes: [{targets: [nowhere]}]\n")
    assert main(["router", "--routes", str(routes)]) == 2
    assert "unknown targets" in capsys.readouterr().err
    assert main(["router", "--routes", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read routes file" in capsys.readouterr().err
