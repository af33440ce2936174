"""``distillguard routes check``: is the routing setup usable? (Alertmanager reachable, its config valid)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .delivery import AlertmanagerClient


async def check_replicas(urls: list[str], timeout_s: float) -> list[str]:
    """One line per Alertmanager replica that is not ready (``GET /-/ready``); none when all are."""
    client = AlertmanagerClient(urls, timeout_s)
    try:
        outcomes = await client.ready()
    finally:
        await client.close()
    return [f"Alertmanager {o.replica} not ready: {o.error}" for o in outcomes if not o.ok]


def check_alertmanager_config(path: Path, amtool: str | None = None) -> list[str]:
    """``amtool check-config PATH``: the problems it reports (its own output), none when valid.

    Without amtool nothing but readability can be checked, and that is said, not passed over.
    """
    if not Path(path).is_file():
        return [f"Alertmanager config {path} does not exist"]
    amtool = amtool or shutil.which("amtool")
    if amtool is None:
        return [f"amtool not found: cannot validate {path} (install prometheus-alertmanager)"]
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return []
    return [f"{path} is not a valid Alertmanager config: {(result.stdout + result.stderr).strip()}"]
