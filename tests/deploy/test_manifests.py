"""deploy/ checked against the code, statically (no cluster, no Docker engine here).

Every YAML parses; kustomizations name files that exist; names, labels, selectors and
ports agree across Deployments, Services, PDBs and HPAs; probes hit endpoints the code
serves; container commands are ones the `laneway` parser accepts; env vars are ones the
code reads; the HPAs scale on queue-delay metrics the code exports; the shutdown grace
periods cover the drain. Each check names the file and field it found wrong.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.lanes_runtime import admission
from lanes.advice import DEMO_KEY_SHA256, advice
from lanes.policy_load import parse_policy
from tests.deploy.cli_check import parse
from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    OVERLAYS,
    ROOT,
    Dockerfile,
    Rendered,
    container_args,
    containers,
    flag,
    kustomizations,
    load_all,
    package_folders,
    pod_spec,
    referenced_files,
    render,
    yaml_files,
)
from workers.main import SERVICE_NAME

PLACEHOLDERS = {"POD_IP": "10.0.0.7"}  # fieldRef values, for parsing args that expand them


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render(request.param)


def _gateway(r: Rendered) -> tuple[dict, dict]:
    d = r.get("Deployment", "laneway-gateway")
    return d, containers(d)[0]


def _worker(r: Rendered) -> tuple[dict, dict]:
    d = r.get("Deployment", "laneway-worker")
    return d, containers(d)[0]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ---- files -----------------------------------------------------------------------------

def test_every_yaml_file_parses() -> None:
    files = yaml_files()
    assert len(files) >= 20, files
    for path in files:
        try:
            docs = load_all(path)
        except yaml.YAMLError as exc:
            raise AssertionError(f"{path.relative_to(ROOT)}: {exc}") from None
        assert docs, f"{path.relative_to(ROOT)} is empty"
    for path in DEPLOY.rglob("*.json"):
        json.loads(path.read_text())


def test_kustomizations_reference_files_that_exist() -> None:
    found = kustomizations()
    assert {p.parent.name for p in found} >= {"base", "redis", *OVERLAYS}, found
    for k in found:
        for what, path in referenced_files(k):
            assert path.exists(), f"{k.relative_to(ROOT)}: {what} {path} does not exist"


def test_kubernetes_objects_have_what_the_api_requires() -> None:
    for path in (K8S / "base").rglob("*.yaml"):
        if path.name in ("kustomization.yaml", "policy.yaml"):
            continue
        for doc in load_all(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.relative_to(ROOT)}: {sorted(doc)}"
            assert doc["metadata"].get("name"), f"{path.relative_to(ROOT)}: unnamed {doc['kind']}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_builds_the_overlay_as_the_checks_below_see_it(overlay: str) -> None:
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                          str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    built = Rendered([d for d in yaml.safe_load_all(out.stdout) if d])
    mine = render(overlay)
    # Generated ConfigMaps get a content hash in kustomize's names; ours stay plain.
    def names(r: Rendered) -> list[tuple[str, str]]:
        return sorted((d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])
                       if d["kind"] in ("ConfigMap", "Secret") else d["metadata"]["name"]) for d in r.docs)
    assert names(built) == names(mine)
    for name in ("laneway-gateway", "laneway-worker"):
        a, b = containers(built.get("Deployment", name))[0], containers(mine.get("Deployment", name))[0]
        assert container_args(a) == container_args(b) and a["image"] == b["image"], name
        assert sorted(e["name"] for e in a["env"]) == sorted(e["name"] for e in b["env"]), name
        assert a.get("resources") == b.get("resources"), name


# ---- names, labels, selectors, ports ----------------------------------------------------------

def test_workload_selectors_match_their_own_pod_labels(rendered: Rendered) -> None:
    for w in rendered.workloads():
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert _selects(w["spec"]["selector"]["matchLabels"], labels), w["metadata"]["name"]


def test_services_select_one_workload_and_target_its_named_ports(rendered: Rendered) -> None:
    for svc in rendered.of_kind("Service"):
        name = svc["metadata"]["name"]
        targets = [w for w in rendered.workloads()
                   if _selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, f"Service {name} selects {[w['metadata']['name'] for w in targets]}"
        ports = {p["name"]: p["containerPort"] for c in containers(targets[0]) for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            assert target in ports or target in ports.values(), f"Service {name}: targetPort {target} not in {ports}"


def test_pdbs_and_hpas_point_at_existing_workloads(rendered: Rendered) -> None:
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        assert any(_selects(pdb["spec"]["selector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"])
                   for w in rendered.workloads()), pdb["metadata"]["name"]
    hpas = rendered.of_kind("HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {"laneway-gateway", "laneway-worker"}
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        rendered.get(ref["kind"], ref["name"])
        assert h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]


def test_ports_agree_between_args_container_ports_and_probes(rendered: Rendered) -> None:
    _, gw = _gateway(rendered)
    gw_args = container_args(gw, PLACEHOLDERS)
    gw_ports = {p["name"]: p["containerPort"] for p in gw["ports"]}
    assert gw_ports["http"] == int(flag(gw_args, "--port")), gw_args
    worker_deploy, wk = _worker(rendered)
    wk_args = container_args(wk, PLACEHOLDERS)
    wk_ports = {p["name"]: p["containerPort"] for p in wk["ports"]}
    assert wk_ports["grpc"] == int(flag(wk_args, "--port")) == int(flag(wk_args, "--advertise").rsplit(":", 1)[1])
    assert wk_ports["metrics"] == int(flag(wk_args, "--metrics-port"))
    annotations = worker_deploy["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == wk_ports["metrics"]
    gw_annotations = _gateway(rendered)[0]["spec"]["template"]["metadata"]["annotations"]
    assert int(gw_annotations["prometheus.io/port"]) == gw_ports["http"]
    assert gw_annotations["prometheus.io/path"] in _gateway_get_paths()


# ---- commands and environment ------------------------------------------------------------------

def test_container_commands_are_laneway_subcommands_the_cli_accepts(rendered: Rendered) -> None:
    for w in rendered.workloads():
        for c in containers(w):
            if c.get("command", [None])[0] != "laneway":
                continue
            where = f"{w['metadata']['name']}/{c['name']}"
            args = parse(container_args(c, PLACEHOLDERS), where)
            assert args.command in ("gateway", "worker"), where
            if args.command == "worker":
                assert args.registry_url is None  # from LANEWAY_REDIS_URL at run time, not baked in


def test_env_vars_are_ones_the_code_reads_or_the_args_expand(rendered: Rendered) -> None:
    source = _python_source()
    collector_config = (DEPLOY / "otel-collector.yaml").read_text()
    for w in rendered.workloads():
        for c in containers(w):
            expanded = " ".join([*c.get("command", []), *c.get("args", [])])
            for e in c.get("env", []):
                name = e["name"]
                where = f"{w['metadata']['name']}/{c['name']} env {name}"
                if f"$({name})" in expanded:
                    continue
                if w["metadata"]["name"] == "laneway-otel-collector":
                    assert f"${{env:{name}" in collector_config, f"{where}: not used by otel-collector.yaml"
                elif c["name"] != "redis":
                    assert re.search(rf"[\"']{name}[\"']", source), f"{where}: no code reads it"


def test_redis_url_secret_names_the_redis_service(rendered: Rendered) -> None:
    secret = rendered.get("Secret", "laneway-redis")
    url = urlparse(secret["stringData"]["LANEWAY_REDIS_URL"])
    svc = rendered.get("Service", url.hostname)
    assert url.port in [p["port"] for p in svc["spec"]["ports"]]
    redis = rendered.get("StatefulSet", "laneway-redis")
    args = containers(redis)[0]["args"]
    assert flag(args, "--appendonly") == "yes", "Batch API jobs must survive a Redis restart (AOF)"
    for _, c in (_gateway(rendered), _worker(rendered)):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
        assert refs["LANEWAY_REDIS_URL"] == {"name": "laneway-redis", "key": "LANEWAY_REDIS_URL"}


def test_traces_go_to_the_collector_service_on_a_port_it_receives_on(rendered: Rendered) -> None:
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    receiving = {int(p["endpoint"].rsplit(":", 1)[1]) for p in collector["receivers"]["otlp"]["protocols"].values()}
    svc = rendered.get("Service", "laneway-otel-collector")
    for _, c in (_gateway(rendered), _worker(rendered)):
        url = urlparse(next(e["value"] for e in c["env"] if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"))
        assert url.hostname == svc["metadata"]["name"]
        port = next(p for p in svc["spec"]["ports"] if p["port"] == url.port)
        container_ports = {p["name"]: p["containerPort"] for p in containers(
            rendered.get("Deployment", "laneway-otel-collector"))[0]["ports"]}
        assert container_ports[port["targetPort"]] in receiving
    cm = rendered.get("ConfigMap", "laneway-otel-collector")
    assert yaml.safe_load(cm["data"]["config.yaml"]) == collector, "the collector runs deploy/otel-collector.yaml"
    otel = containers(rendered.get("Deployment", "laneway-otel-collector"))[0]
    mount = next(m for m in otel["volumeMounts"] if m["name"] == "config")
    assert f"--config={mount['mountPath']}/config.yaml" in otel["args"]


# ---- probes and shutdown ------------------------------------------------------------------------

def _gateway_get_paths() -> set[str]:
    app = create_app(GatewayConfig())
    return {r.path for r in app.routes if "GET" in (getattr(r, "methods", None) or ())}


def test_gateway_probes_hit_real_routes_on_its_port(rendered: Rendered) -> None:
    deploy, gw = _gateway(rendered)
    paths = _gateway_get_paths()
    ports = {p["name"]: p["containerPort"] for p in gw["ports"]}
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = gw[kind]["httpGet"]
        assert probe["path"] in paths, f"{kind} {probe['path']} is not a GET route of gateway/app.py"
        assert probe["port"] in ports or probe["port"] in ports.values()
    assert gw["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness must turn 503 when draining"


def test_worker_probes_use_the_grpc_health_service_on_its_port(rendered: Rendered) -> None:
    deploy, wk = _worker(rendered)
    port = int(flag(container_args(wk, PLACEHOLDERS), "--port"))
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = wk[kind]["grpc"]
        assert probe["port"] == port, f"{kind} probes {probe['port']}, the worker serves {port}"
        assert probe.get("service", "") in ("", SERVICE_NAME), f"{kind}: unknown health service {probe}"
    assert wk["readinessProbe"]["grpc"]["service"] == SERVICE_NAME


@pytest.mark.parametrize("name", ["laneway-gateway", "laneway-worker"])
def test_termination_grace_covers_the_drain_and_liveness_never_cuts_it(rendered: Rendered, name: str) -> None:
    deploy = rendered.get("Deployment", name)
    c = containers(deploy)[0]
    args = container_args(c, PLACEHOLDERS)
    drain = float(flag(args, "--drain-delay")) + float(flag(args, "--drain-grace"))
    grace = pod_spec(deploy)["terminationGracePeriodSeconds"]
    assert grace > drain, f"{name}: SIGKILL after {grace}s, but the drain takes up to {drain}s"
    live = c["livenessProbe"]
    window = live["periodSeconds"] * live["failureThreshold"]
    assert window >= grace, f"{name}: liveness fails after {window}s, inside the {grace}s termination grace"


def test_policy_is_a_secret_mounted_as_a_directory_so_it_hot_reloads(rendered: Rendered) -> None:
    deploy, gw = _gateway(rendered)
    policy_path = flag(container_args(gw, PLACEHOLDERS), "--policy")
    mount = next(m for m in gw["volumeMounts"] if policy_path.startswith(m["mountPath"] + "/"))
    assert "subPath" not in mount, "a subPath mount never sees Secret updates"
    volume = next(v for v in pod_spec(deploy)["volumes"] if v["name"] == mount["name"])
    assert "secret" in volume, "the policy holds key hashes: it comes from a Secret, not a ConfigMap"
    secret = rendered.get("Secret", volume["secret"]["secretName"])
    key = policy_path[len(mount["mountPath"]) + 1:]
    policy = parse_policy(secret["stringData"][key], "deploy/k8s/base/policy.yaml")
    assert policy.auth.required, "a cluster gateway is reachable from outside: keys must be required"
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    gen = next(g for g in kustomization["secretGenerator"] if g["name"] == secret["metadata"]["name"])
    assert gen["options"]["disableNameSuffixHash"], "a hashed name rolls the gateways instead of reloading"


def test_nothing_in_deploy_grants_the_public_demo_key() -> None:
    for path in (ROOT / "deploy").rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".json", ".env", ""):
            assert DEMO_KEY_SHA256 not in path.read_text(errors="replace"), f"{path} grants the demo key"
    policy = parse_policy((K8S / "base" / "policy.yaml").read_text(), "deploy/k8s/base/policy.yaml")
    assert not any(DEMO_KEY_SHA256 in t.keys_sha256 for t in policy.tenants.values())
    assert not advice(policy), "the shipped cluster policy draws a warning from `laneway policy check`"


# ---- autoscaling ---------------------------------------------------------------------------------

def _exported_series() -> set[str]:
    series = set()
    for path in [*(ROOT / "gateway" / "telemetry").glob("*.py"), *(ROOT / "workers" / "telemetry").glob("*.py")]:
        text = path.read_text()
        for kind, name in re.findall(r"\b(Histogram|Counter|CounterMetricFamily|Gauge|GaugeMetricFamily)\(\s*\"(\w+)\"",
                                     text):
            if kind == "Histogram":
                series |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            elif kind.startswith("Counter"):
                series.add(f"{name}_total")
            else:
                series.add(name)
    return series


def _adapter_rules() -> list[dict]:
    values = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    return [{**r, "scope": scope} for scope in ("custom", "external") for r in values["rules"].get(scope, [])]


def test_adapter_rules_read_series_the_code_exports() -> None:
    exported = _exported_series()
    for rule in _adapter_rules():
        queried = set(re.findall(r"\b(laneway_\w+)\{", rule["seriesQuery"] + rule["metricsQuery"]))
        assert queried, rule
        assert queried <= exported, f"adapter rule {rule['name']['as']}: {sorted(queried - exported)} not exported " \
                                    f"by gateway/telemetry or workers/telemetry"
        assert re.fullmatch(rule["name"]["matches"].strip("^$"), re.findall(r"(\w+)\{", rule["seriesQuery"])[0])
    reasons = {admission.QUEUE_FULL, admission.BUDGET, admission.DEADLINE,
               *re.findall(r'code="([\w-]+)"', (ROOT / "gateway" / "service.py").read_text())}
    for rule in _adapter_rules():
        for alternatives in re.findall(r'reason=~"([^"]+)"', rule["metricsQuery"]):
            assert set(alternatives.split("|")) <= reasons, f"{alternatives}: not refusal reasons the gateway sets"


def test_hpas_scale_on_queue_delay_not_utilisation_alone(rendered: Rendered) -> None:
    provided = {(r["scope"], r["name"]["as"]) for r in _adapter_rules()}
    policy = parse_policy((K8S / "base" / "policy.yaml").read_text(), "deploy/k8s/base/policy.yaml")
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        name = hpa["metadata"]["name"]
        kinds = [m["type"] for m in hpa["spec"]["metrics"]]
        assert set(kinds) - {"Resource"}, f"{name} scales on CPU/GPU utilisation alone"
        for m in hpa["spec"]["metrics"]:
            if m["type"] == "Resource":
                continue
            spec = m["pods"] if m["type"] == "Pods" else m["external"]
            scope = "custom" if m["type"] == "Pods" else "external"
            metric = spec["metric"]["name"]
            assert (scope, metric) in provided, f"{name}: no {scope} adapter rule provides {metric}"
            selector = spec["metric"].get("selector", {})
            lanes = list(selector.get("matchLabels", {}).values()) or [
                v for e in selector.get("matchExpressions", []) for v in e["values"]]
            assert lanes and set(lanes) <= set(policy.lanes), f"{name}/{metric}: lanes {lanes} not in the policy"
            if metric.endswith("_p95_seconds"):
                target = _quantity(spec["target"].get("value") or spec["target"].get("averageValue"))
                budget = min(policy.lanes[lane].max_queue_wait_ms for lane in lanes) / 1000
                assert target < budget, f"{name}/{metric}: target {target}s is not inside the {budget}s lane budget"


def _quantity(q: str) -> float:
    return float(q[:-1]) / 1000 if str(q).endswith("m") else float(q)


# ---- accelerators --------------------------------------------------------------------------------

def test_only_the_gpu_overlay_asks_for_gpus() -> None:
    for overlay in OVERLAYS:
        _, wk = _worker(render(overlay))
        gpus = wk.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        if overlay == "gpu":
            assert gpus == "1" and wk["image"].endswith("-cuda"), wk
        else:
            assert gpus is None and wk["image"].endswith("-cpu"), wk


def test_pods_run_as_non_root(rendered: Rendered) -> None:
    for w in rendered.workloads():
        sc = pod_spec(w).get("securityContext", {})
        assert sc.get("runAsNonRoot") and sc.get("runAsUser", 0) != 0, w["metadata"]["name"]
        for c in containers(w):
            assert c.get("securityContext", {}).get("allowPrivilegeEscalation") is False, c["name"]


# ---- compose -------------------------------------------------------------------------------------

def test_compose_services_wire_together() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "gateway", "otel-collector"} <= set(services)
    workers = [n for n, s in services.items() if s.get("command", [None])[0] == "worker"]
    assert len(workers) == 2, workers
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"compose {name} depends on unknown service {dep}"
        for mount in svc.get("volumes", []):
            src = mount.split(":", 1)[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"compose {name} mounts missing {src}"
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists(), name
        if svc.get("command") and svc["command"][0] in ("gateway", "worker"):
            parse(svc["command"], f"compose {name}")
    gw = parse(services["gateway"]["command"], "compose gateway")
    for address in gw.workers:
        host, port = address.rsplit(":", 1)
        assert host in workers, f"compose gateway dials {address}, not a worker service"
        assert parse(services[host]["command"], host).port == int(port)
        health = services[host].get("healthcheck") or _image_healthcheck(services[host])
        assert health, f"{host}: the gateway waits for service_healthy, so it needs a healthcheck"
    assert urlparse(gw.redis_url).hostname == "redis"
    grace = services["gateway"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > gw.drain_delay + gw.drain_grace


def _image_healthcheck(service: dict) -> bool:
    build = service["build"]
    return bool(Dockerfile.read(DEPLOY / build["context"] / build["dockerfile"]).all("HEALTHCHECK"))


def _python_source() -> str:
    return "\n".join(p.read_text() for folder in package_folders() for p in (ROOT / folder).rglob("*.py"))
