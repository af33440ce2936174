"""deploy/k8s: every manifest loads; every env var set is one the code reads; probes hit a
served path on the container's web port; secrets come only from the Secret."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

from distillguard.dashboard.server import DashboardSettings
from distillguard.sinks.clickhouse import ClickHouseSettings
from distillguard.sinks.routing.routes import parse_routes
from distillguard.streams.packer import PackerSettings
from distillguard.streams.router import RouterSettings
from distillguard.streams.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
SETTINGS = (WorkerSettings, ClickHouseSettings, RouterSettings, DashboardSettings, PackerSettings)
SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ROUTING_KEY|WEBHOOK_URL")
# command (container args[0]) -> the paths its web server serves and the setting of its port
SERVED = {"worker": ({"/health", "/metrics"}, "DG_WEB_PORT", 6066),
          "router": ({"/health", "/metrics", "/incidents"}, "DG_ROUTER_WEB_PORT", 6067),
          "dashboard": ({"/health", "/"}, "DG_DASHBOARD_PORT", 8050),
          "packer": ({"/health"}, "DG_PACKER_WEB_PORT", 6068)}
# commands whose web server serves /health only (counts, no data): no token to carry
HEALTH_ONLY = {"packer"}


def settings_env_names(cls) -> set[str]:
    """Every environment variable name a pydantic-settings class reads."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add((prefix + name).upper())
        elif isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str)}
        else:
            names.add(str(alias))
    return names


def code_env_names() -> set[str]:
    """Names read straight from os.environ in the package's code."""
    pattern = re.compile(r"""os\.environ(?:\.get\(|\[)\s*["']([A-Z0-9_]+)["']""")
    names = set()
    for folder in ("distillguard", "streams", "sinks", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(pattern.findall(path.read_text()))
    return names


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize's secretGenerator reads an ``envs`` file."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value for key, value in pairs}


def generated_secret() -> dict:
    """The Secret the kustomization's secretGenerator makes, from the committed example of its
    (git-ignored) env file: what the workloads will read."""
    (generator,) = yaml.safe_load((K8S / "kustomization.yaml").read_text())["secretGenerator"]
    (envs,) = generator["envs"]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]},
            "stringData": env_file(K8S / f"{envs}.example")}


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs + [generated_secret()]


def _one(manifests, kind: str, name: str) -> dict:
    (doc,) = [d for d in manifests if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _workloads(manifests):
    return [d for d in manifests if d["kind"] in ("Deployment", "StatefulSet")]


def _containers(manifests):
    for workload in _workloads(manifests):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            yield workload, container


def _routes(manifests):
    return parse_routes(_one(manifests, "ConfigMap", "distillguard-routes")["data"]["routes.yaml"])


def _container_env(manifests, container) -> dict[str, object]:
    """name -> value (a str, or the valueFrom dict) as the container will see it."""
    env: dict[str, object] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_one(manifests, "ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update({k: {"secretRef": source["secretRef"]["name"]}
                        for k in _one(manifests, "Secret", source["secretRef"]["name"])["stringData"]})
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def test_every_manifest_is_listed_in_the_kustomization_and_loads(manifests):
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert {d["kind"] for d in manifests} >= {"Deployment", "Service", "ConfigMap", "Secret",
                                              "PodDisruptionBudget", "Namespace", "Kustomization"}
    for doc in manifests:
        assert doc.get("apiVersion") and doc.get("kind")
        assert doc["kind"] == "Kustomization" or doc["metadata"]["name"]


def test_every_env_var_set_is_read_by_the_code(manifests):
    readable = set().union(*(settings_env_names(cls) for cls in SETTINGS)) | code_env_names()
    for workload, container in _containers(manifests):
        unknown = set(_container_env(manifests, container)) - readable
        assert not unknown, (workload["metadata"]["name"], sorted(unknown))
    # and the names are read as meant: the settings built from the ConfigMap + Secret carry them
    config = _one(manifests, "ConfigMap", "distillguard-config")["data"]
    secret = _one(manifests, "Secret", "distillguard-secrets")["stringData"]
    env = {**config, **secret}
    worker = _from_env(WorkerSettings, env)
    assert worker.kafka_bootstrap == config["DG_KAFKA_BOOTSTRAP"]
    assert worker.kafka_security_protocol == "SASL_SSL" and worker.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert worker.kafka_sasl_password.get_secret_value() == secret["DG_KAFKA_SASL_PASSWORD"]
    assert worker.partitions == int(config["DG_PARTITIONS"])
    assert worker.allowed_lateness_s == float(config["DG_ALLOWED_LATENESS_S"])
    clickhouse = _from_env(ClickHouseSettings, env)
    assert not clickhouse.embedded and clickhouse.user == config["DG_CLICKHOUSE_USER"]
    assert clickhouse.password.get_secret_value() == secret["DG_CLICKHOUSE_PASSWORD"]
    assert "@" not in config["DG_CLICKHOUSE_URL"]  # no credentials in the URL
    router = _from_env(RouterSettings, env)
    assert router.kafka_bootstrap == config["DG_KAFKA_BOOTSTRAP"] and router.partitions == worker.partitions
    # the router posts to every Alertmanager replica, each named on its own
    (router_container,) = _one(manifests, "Deployment", "distillguard-router")["spec"]["template"]["spec"][
        "containers"]
    router = _from_env(RouterSettings, {**env, **{k: v for k, v in _container_env(manifests, router_container).items()
                                                  if isinstance(v, str)}})
    assert len(router.alertmanager_urls) == 2


def _from_env(cls, env: dict[str, str]):
    mp = pytest.MonkeyPatch()
    try:
        for name in [n for n in __import__("os").environ if n.startswith(("DG_", "CLICKHOUSE_", "KAFKA_"))]:
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, str(value))
        return cls()
    finally:
        mp.undo()


def test_secrets_come_only_from_the_secret(manifests):
    secret = _one(manifests, "Secret", "distillguard-secrets")
    for cm in (d for d in manifests if d["kind"] == "ConfigMap"):
        assert not [k for k in cm.get("data", {}) if SECRET_LIKE.search(k)], cm["metadata"]["name"]
    for workload, container in _containers(manifests):
        for item in container.get("env", []):
            if SECRET_LIKE.search(item["name"]):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                assert ref and "value" not in item, (workload["metadata"]["name"], item["name"])
                assert ref["name"] == "distillguard-secrets" and ref["key"] in secret["stringData"]
    # Placeholders only: nothing that looks like a real credential is committed.
    assert all(v == "change-me" or "change" in v for v in secret["stringData"].values())


def test_probes_hit_a_served_path_on_the_web_port(manifests):
    for workload, container in _containers(manifests):
        command = container["args"][0]
        paths, port_setting, default_port = SERVED[command]
        env = _container_env(manifests, container)
        web_port = int(env.get(port_setting, default_port))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        host_setting = {"worker": "DG_WEB_BIND", "router": "DG_ROUTER_WEB_BIND",
                        "dashboard": "DG_DASHBOARD_HOST", "packer": "DG_PACKER_WEB_BIND"}[command]
        assert env.get(host_setting) == "0.0.0.0", (command, "must listen on the pod IP for its probes")
        probes = [container[k] for k in ("livenessProbe", "readinessProbe", "startupProbe") if k in container]
        assert {"livenessProbe", "readinessProbe"} <= set(container), command
        for probe in probes:
            get = probe["httpGet"]
            port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
            assert port == web_port, (command, port, web_port)
            assert get["path"] in paths, (command, get["path"])


def test_web_endpoints_beyond_loopback_take_their_token_from_the_secret(manifests):
    """Every container listens on the pod IP (its probes need it), so each must carry the web
    token from the Secret, and its settings must pass the start-up check with a real token.
    The committed placeholder is too short: a deployment that forgot to set it stops."""
    from distillguard.streams.web import WeakWebToken, is_loopback, require_token_when_exposed

    secret = _one(manifests, "Secret", "distillguard-secrets")["stringData"]
    real_token = "0123456789abcdef0123456789abcdef"
    for workload, container in _containers(manifests):
        if container["args"][0] in HEALTH_ONLY:
            continue
        env = _container_env(manifests, container)
        assert env.get("DG_WEB_TOKEN") == {"secretKeyRef": {"name": "distillguard-secrets", "key": "DG_WEB_TOKEN"}}
        resolved = {k: (secret[v["secretKeyRef"]["key"]] if isinstance(v, dict) and "secretKeyRef" in v else v)
                    for k, v in env.items() if not isinstance(v, dict) or "secretKeyRef" in v}
        settings_class = {"worker": WorkerSettings, "router": RouterSettings,
                          "dashboard": DashboardSettings}[container["args"][0]]
        for token, ok in ((real_token, True), (secret["DG_WEB_TOKEN"], False)):
            settings = _from_env(settings_class, {**resolved, "DG_WEB_TOKEN": token})
            bind = settings.host if settings_class is DashboardSettings else settings.web_bind
            web_token = settings.token if settings_class is DashboardSettings else settings.web_token
            assert not is_loopback(bind) and web_token.get_secret_value() == token
            if ok:
                require_token_when_exposed(bind, web_token, setting="bind")
            else:
                with pytest.raises(WeakWebToken):
                    require_token_when_exposed(bind, web_token, setting="bind")


def test_worker_app_serves_the_probed_paths(monkeypatch, tmp_path):
    from distillguard.streams import feedback_follower
    from distillguard.streams.app import worker_app

    class NoSink:
        client = None

    monkeypatch.setattr(feedback_follower.FeedbackFollower, "catch_up", lambda self: None)
    monkeypatch.setenv("DG_DATA_DIR", str(tmp_path))
    app = worker_app(WorkerSettings(), pipeline=object(), sink=NoSink())
    served = set(app.web.views)
    assert SERVED["worker"][0] <= served, served
    # the router (a Faust app too) and the dashboard (aiohttp) register theirs in code
    assert '@app.page("/health")' in (ROOT / "streams" / "router.py").read_text()
    assert 'add_get("/health"' in (ROOT / "distillguard" / "dashboard" / "server.py").read_text()


def test_every_container_has_requests_limits_and_runs_unprivileged(manifests):
    for workload, container in _containers(manifests):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_disruption_budgets_select_the_workers_and_the_router(manifests):
    budgets = [d for d in manifests if d["kind"] == "PodDisruptionBudget"]
    selected = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for b in budgets}
    for name in ("distillguard-worker", "distillguard-router"):
        workload = _one(manifests, "Deployment", name)
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/name"] in selected
    worker = _one(manifests, "Deployment", "distillguard-worker")
    config = _one(manifests, "ConfigMap", "distillguard-config")["data"]
    assert worker["spec"]["replicas"] <= int(config["DG_PARTITIONS"])  # more would sit idle


def test_packer_feeds_the_workers_it_is_deployed_with(manifests):
    """The packer reads the workers' requests topic and writes the topic they read: with the
    packer deployed the workers read packed, and with the same Kafka settings."""
    config = _one(manifests, "ConfigMap", "distillguard-config")["data"]
    secret = _one(manifests, "Secret", "distillguard-secrets")["stringData"]
    (packer_container,) = _one(manifests, "Deployment", "distillguard-packer")["spec"]["template"]["spec"][
        "containers"]
    assert packer_container["args"] == ["packer"]
    plain = {k: v for k, v in _container_env(manifests, packer_container).items() if isinstance(v, str)}
    packer = _from_env(PackerSettings, {**config, **secret, **plain})
    worker = _from_env(WorkerSettings, {**config, **secret})
    assert worker.read_packed and worker.input_topic == packer.packed_topic
    assert packer.requests_topic == worker.requests_topic and packer.kafka_bootstrap == worker.kafka_bootstrap
    assert packer.kafka_sasl_password.get_secret_value() == secret["DG_KAFKA_SASL_PASSWORD"]
    budgets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for d in manifests
               if d["kind"] == "PodDisruptionBudget"}
    assert "distillguard-packer" in budgets


def test_routes_configmap_is_the_example_routes_file(manifests):
    example = parse_routes((ROOT / "deploy" / "routes.example.yaml").read_text())
    assert _routes(manifests) == example


def test_detector_overrides_configmap_is_the_example_file_and_is_mounted_where_the_setting_points(manifests):
    data = _one(manifests, "ConfigMap", "distillguard-detector-overrides")["data"]
    example = ROOT / "deploy" / "detector-overrides.example.yaml"
    assert yaml.safe_load(data["overrides.yaml"]) == yaml.safe_load(example.read_text())
    path = Path(_one(manifests, "ConfigMap", "distillguard-config")["data"]["DG_DETECTOR_OVERRIDES_FILE"])
    assert path.name in data  # the key the volume projects as that file
    worker = _one(manifests, "Deployment", "distillguard-worker")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in worker["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in worker["volumes"]}
    assert mounts["detector-overrides"] == str(path.parent)
    assert volumes["detector-overrides"]["configMap"]["name"] == "distillguard-detector-overrides"
    assert WorkerSettings(detector_overrides_file=example).detector_config().thresholds == (0.5, 0.65, 0.8)


def _kustomize_build(source: Path = K8S) -> tuple[list[dict], str] | None:
    """The kustomization at ``source`` as `kubectl apply -k` applies it (the env file made from
    its example), when kubectl or kustomize is installed; None when neither is."""
    import shutil
    import subprocess
    import tempfile

    tool = (["kubectl", "kustomize"] if shutil.which("kubectl") else ["kustomize", "build"] if shutil.which(
        "kustomize") else None)
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "k8s"
        shutil.copytree(source, copy)
        (copy / "secrets.env").write_text((K8S / "secrets.env.example").read_text())
        out = subprocess.run([*tool, str(copy)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d], " ".join(tool)


def test_secrets_are_generated_from_an_uncommitted_file_never_applied_from_a_manifest():
    resources = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    for name in resources:
        kinds = {d["kind"] for d in yaml.safe_load_all((K8S / name).read_text()) if d}
        assert "Secret" not in kinds, f"{name}: `kubectl apply -k` would reset real secrets to its values"
    assert "secrets.env" in (K8S / ".gitignore").read_text().split()  # the real file is never committed
    import subprocess

    tracked = subprocess.run(["git", "ls-files", str(K8S)], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert tracked and not any(p.endswith("/secrets.env") for p in tracked)
    # every secret a workload reads is a key of the example env file
    docs = [d for p in K8S.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    used = {key for name, key in _secret_refs(docs) if name == "distillguard-secrets"}
    assert used and used <= set(env_file(K8S / "secrets.env.example"))
    external = yaml.safe_load((K8S / "examples" / "external-secret.yaml").read_text())
    assert external["kind"] == "ExternalSecret" and external["spec"]["target"]["name"] == "distillguard-secrets"


def test_the_kustomization_builds_with_a_generated_secret_a_network_policy_and_the_migrate_job():
    built = _kustomize_build()
    if built is None:  # neither tool installed: the same checks on the files (and the Secret they generate)
        docs = [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
        docs = [d for d in docs if d["kind"] != "Kustomization"] + [generated_secret()]
    else:
        docs, _ = built
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    secret_name = secret["metadata"]["name"]
    assert secret_name.startswith("distillguard-secrets")
    refs = {name for name, _ in _secret_refs(docs)}
    assert refs == {secret_name}  # every reference follows the generated name
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "Job")}
    (deny,) = [p for p in policies if "ingress" not in p["spec"] and "egress" not in p["spec"]]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}  # default deny, both ways, of every pod
    assert all(_selects(deny["spec"]["podSelector"], w["spec"]["template"]["metadata"]["labels"])
               for w in workloads.values())
    for name, workload in workloads.items():  # every pod is let in on (only) its web port
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ports = {p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        allowed = {port["port"] for p in policies for rule in p["spec"].get("ingress", []) for port in rule["ports"]
                   if _selects(p["spec"]["podSelector"], labels)}
        assert allowed == ports, (name, allowed, ports)
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"] and job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def _secret_refs(node) -> list[tuple[str, str]]:
    """(secret name, key) of every secretKeyRef under ``node``."""
    if isinstance(node, dict):
        found = [(node["secretKeyRef"]["name"], node["secretKeyRef"]["key"])] if "secretKeyRef" in node else []
        return found + [ref for value in node.values() for ref in _secret_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _secret_refs(item)]
    return []


def _selects(selector: dict, labels: dict) -> bool:
    if not selector:
        return True
    ok = selector.get("matchLabels", {}).items() <= labels.items()
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        ok = ok and labels.get(expr["key"]) in expr["values"]
    return ok


def test_only_the_migrate_job_changes_the_schema(manifests):
    config = _one(manifests, "ConfigMap", "distillguard-config")["data"]
    secret = _one(manifests, "Secret", "distillguard-secrets")["stringData"]
    for workload, container in _containers(manifests):  # workers, router, dashboard
        env = {k: v for k, v in _container_env(manifests, container).items() if isinstance(v, str)}
        assert _from_env(ClickHouseSettings, env).migrate is False, workload["metadata"]["name"]
    job = _one(manifests, "Job", "distillguard-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = _container_env(manifests, container)
    readable = settings_env_names(ClickHouseSettings) | settings_env_names(WorkerSettings)
    assert set(env) <= readable | settings_env_names(RouterSettings) | settings_env_names(DashboardSettings)
    assert env["DG_CLICKHOUSE_PASSWORD"] == {"secretKeyRef": {"name": "distillguard-secrets",
                                                              "key": "DG_CLICKHOUSE_PASSWORD"}}
    settings = _from_env(ClickHouseSettings, {**config, "DG_CLICKHOUSE_PASSWORD": secret["DG_CLICKHOUSE_PASSWORD"]})
    assert not settings.embedded and settings.url == config["DG_CLICKHOUSE_URL"]
    from distillguard.cli import build_parser

    assert build_parser().parse_args(container["args"]).func.__name__ == "_cmd_migrate"


def test_the_monitoring_component_scrapes_with_the_token_and_loads_the_pipelines_alert_rules():
    import shutil
    import tempfile

    kustomization = (K8S / "kustomization.yaml").read_text()
    assert "# components: [monitoring]" in kustomization  # off by default: it needs the operator's CRDs
    with tempfile.TemporaryDirectory() as tmp:  # as a user enables it
        copy = Path(tmp) / "k8s"
        shutil.copytree(K8S, copy)
        (copy / "kustomization.yaml").write_text(kustomization.replace("# components: [monitoring]",
                                                                       "components: [monitoring]"))
        built = _kustomize_build(copy)
    if built is None:  # no kubectl / kustomize: the component's own files, the Secret unsuffixed
        docs = [d for p in sorted((K8S / "monitoring").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
                if d and d.get("kind") in ("ServiceMonitor", "PrometheusRule")]
        docs += [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
        docs.append(generated_secret())
    else:
        docs = built[0]
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    jobs_in_rules = set(re.findall(r'job="([^"]+)"', str(rules)))
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    jobs = set()
    for monitor in monitors:
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["authorization"]["credentials"] == {"name": secret["metadata"]["name"], "key": "DG_WEB_TOKEN"}
        (service,) = [s for s in services.values()
                      if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
        jobs |= {r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"}
    assert jobs_in_rules and jobs_in_rules <= jobs  # the rules' up{job=...} see these targets
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == rules["groups"]


def test_workers_get_longer_to_stop_than_they_take_to_give_up(manifests):
    # Asked to stop during a ClickHouse outage the worker gives up after DG_STOP_TIMEOUT_S;
    # a grace period shorter than that kills it before it commits what it stored.
    from distillguard.streams.settings import WorkerSettings

    stop_timeout_s = WorkerSettings.model_fields["stop_timeout_s"].default
    workers = 0
    for workload, container in _containers(manifests):
        if container.get("args", container.get("command", []))[-1:] != ["worker"]:
            continue
        env = _container_env(manifests, container)
        timeout = float(env.get("DG_STOP_TIMEOUT_S", stop_timeout_s))
        assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= timeout + 10
        workers += 1
    assert workers == 1
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    assert compose["stop_grace_period"].endswith("s") and float(compose["stop_grace_period"][:-1]) >= stop_timeout_s + 10
