"""docker-compose.yml comes up as shipped, tested without Docker (none on this machine).

The compose file is validated against the Compose specification (the `compose-spec` package),
its production settings are checked (restart policies, Kafka's log dirs on its volume, a host
listener, Prometheus alerting to Alertmanager), and each distillguard service is started the
way its container would run it: its `command` with its `environment` (interpolated as compose
does) and the image's `ENV`/`WORKDIR` from deploy/Dockerfile, in a read-only copy of the tree,
with no capabilities. Compose host names are mapped to the real local engines: `kafka:9092` to
the embedded broker, the ClickHouse server to chDB in the service's data volume, and
Alertmanager to a local `prometheus-alertmanager`. Each must start and answer /health.

(The image runs as uid 65534. Here the interpreter lives under a root-only home, so the
services run as root with every capability dropped instead: a read-only tree is then as
unwritable as for 65534, and a service that writes beside its code fails the same way.)
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from distillguard.devtools.embedded import free_port

from .receivers import Alertmanager

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
TOKEN = "compose-test-token-0123456789"
# The variables an operator must set (`${VAR:?...}`) or would set for a real deployment.
OPERATOR_ENV = {"DG_WEB_TOKEN": TOKEN, "CLICKHOUSE_PASSWORD": "compose-test-password"}
# Each distillguard service's web port setting (the container's port; remapped to a free one here).
PORT_SETTING = {"worker": "DG_WEB_PORT", "router": "DG_ROUTER_WEB_PORT", "dashboard": "DG_DASHBOARD_PORT",
                "packer": "DG_PACKER_WEB_PORT"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (an unset required one fails)."""
    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose requires {name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, str(value))


def dockerfile() -> tuple[dict[str, str], str]:
    """The image's ENV and WORKDIR."""
    env, workdir = {}, "/"
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            name, _, value = line[4:].strip().partition("=")
            env[name] = value
        elif line.startswith("WORKDIR "):
            workdir = line.split(None, 1)[1].strip()
    return env, workdir


def distillguard_services() -> list[str]:
    return [name for name, svc in compose()["services"].items() if "build" in svc]


def test_the_compose_file_follows_the_compose_specification():
    from compose_spec import PyCompose

    PyCompose.from_yaml(COMPOSE.read_text()).validate()  # raises on what the specification refuses
    with pytest.raises(ValueError):  # (the validator does refuse things)
        PyCompose.from_yaml("services:\n  a:\n    image: x\n    restart: sometimes\n").validate()


def test_the_stack_restarts_keeps_its_data_and_pages_through_alertmanager():
    spec = compose()
    services = spec["services"]
    for name, svc in services.items():
        assert svc.get("restart") in {"always", "unless-stopped", "on-failure"}, f"{name} has no restart policy"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in spec["volumes"], f"{name} mounts an undeclared volume {source}"
        for needed in svc.get("depends_on", []):
            assert needed in services, f"{name} depends on an undefined service {needed}"
    kafka = services["kafka"]
    env = kafka["environment"]
    mounts = {volume.split(":")[1] for volume in kafka["volumes"]}
    assert env["KAFKA_LOG_DIRS"] in mounts, "Kafka's logs are not on its volume: a recreate loses every topic"
    host = [listener for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",") if "127.0.0.1:" in listener]
    assert host, "no listener advertised to the host"
    assert any(port.startswith("127.0.0.1:" + host[0].rsplit(":", 1)[1]) for port in kafka["ports"])
    # Prometheus sends its alerts to the Alertmanager service, whose config is shipped
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for am in prometheus["alerting"]["alertmanagers"] for c in am["static_configs"] for t in c["targets"]]
    assert targets and all(t.split(":")[0] in services for t in targets)
    assert "alertmanager" in services
    config = ROOT / next(v.split(":")[0] for v in services["alertmanager"]["volumes"] if v.startswith("./"))
    assert (config if config.is_file() else config / "alertmanager.yml").is_file()


def read_only_copy(root: Path) -> Path:
    """The committed tree (as in the image's /app), nobody may write in it."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_symlink():  # distillguard/models -> ../models etc., as COPY keeps them
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).symlink_to(os.readlink(source))
        elif source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return root


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.fixture(scope="module")
def image_tree():
    base = Path(tempfile.mkdtemp(prefix="dg-compose-"))
    tree = read_only_copy(base / "app")
    try:
        yield tree
    finally:
        make_writable(tree)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def alertmanager_url(tmp_path_factory):
    alertmanager = Alertmanager(tmp_path_factory.mktemp("compose-alertmanager")).start()
    try:
        yield alertmanager.url
    finally:
        alertmanager.stop()


def unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", *argv]


@pytest.mark.parametrize("service", distillguard_services())
def test_each_distillguard_service_starts_as_the_compose_file_runs_it(service, broker, alertmanager_url, image_tree,
                                                                      tmp_path):
    svc = compose()["services"][service]
    image_env, workdir = dockerfile()
    env = {name: interpolate(value, OPERATOR_ENV) for name, value in {**image_env, **svc.get("environment", {})}.items()}
    # compose host names -> the local engines; container paths -> their stand-ins here
    data = Path(tempfile.mkdtemp(prefix=f"dg-{service}-data-"))  # the image's writable volume
    paths = {image_env["DG_DATA_DIR"]: str(data), workdir: str(image_tree)}
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            paths[target] = str(image_tree / source[2:])
    hosts = {"kafka:9092": broker.bootstrap, "http://alertmanager:9093": alertmanager_url}

    def mapped(value: str) -> str:
        for container, here in {**hosts, **paths}.items():
            value = value.replace(container, here)
        return value

    env = {name: mapped(value) for name, value in env.items()}
    env.pop("DG_CLICKHOUSE_URL", None)  # the ClickHouse server -> chDB in the data volume
    port = free_port()
    env[PORT_SETTING[service]] = str(port)
    env["DG_DATA_DIR"] = str(data)
    env.update(HOME=str(data), PATH=os.environ["PATH"], TMPDIR=str(data))
    argv = [sys.executable, "-m", "distillguard.cli", *[mapped(arg) for arg in svc.get("command", ["worker"])]]
    log = tmp_path / f"{service}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(unprivileged(argv), cwd=image_tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"{service} did not serve /health (exit {proc.poll()}): {log.read_text()[-3000:]}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)
