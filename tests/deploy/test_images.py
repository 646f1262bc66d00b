"""The container images, checked without a Docker engine.

Dockerfiles: non-root users, health checks that hit what the processes serve, commands
the `laneway` parser accepts, the worker's torch pin equal to the Makefile's. The gateway
image's promise (no torch) is tested for real: a gateway process runs with only what
deploy/docker/requirements-gateway.txt installs importable, everything else blocked. The
worker image's health probe script is run against a real gRPC health service.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from packaging.requirements import Requirement

from gateway.app import create_app
from gateway.config import GatewayConfig
from tests.deploy.cli_check import parse
from tests.deploy.manifests import DEPLOY, ROOT, Dockerfile, first_party_modules, package_folders
from tests.support.processes import free_port
from workers.main import SERVICE_NAME

DOCKER = DEPLOY / "docker"
GATEWAY = Dockerfile.read(DOCKER / "gateway.Dockerfile")
WORKER = Dockerfile.read(DOCKER / "worker.Dockerfile")
WORKER_ONLY = {"torch", "ninja", "safetensors", "tokenizers", "jinja2", "transformers", "triton", "llguidance"}


@pytest.mark.parametrize("image", [GATEWAY, WORKER], ids=["gateway", "worker"])
def test_images_run_as_a_non_root_user(image: Dockerfile) -> None:
    user = image.all("USER")[-1].split(":")[0]
    assert user not in ("root", "0"), f"{image.path.name}: USER {user}"
    assert any(f"--uid {user}" in run for run in image.all("RUN")), f"{image.path.name}: user {user} never created"


@pytest.mark.parametrize("image", [GATEWAY, WORKER], ids=["gateway", "worker"])
def test_copied_sources_exist(image: Dockerfile) -> None:
    for rest in image.all("COPY"):
        if rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for src in sources:
            assert (ROOT / src).exists(), f"{image.path.name}: COPY {src}: no such file in the build context"


@pytest.mark.parametrize("image", [GATEWAY, WORKER], ids=["gateway", "worker"])
def test_images_copy_every_package_pyproject_builds(image: Dockerfile) -> None:
    # `pip install .` in the image finds only what was copied: a package left out is missing at run time.
    copied = {rest.split()[0] for rest in image.all("COPY") if not rest.startswith("--from")}
    missing = [folder for folder in package_folders() if folder not in copied]
    assert not missing, f"{image.path.name} does not COPY {missing}"


def test_gateway_image_command_and_healthcheck_agree_with_the_code() -> None:
    cmd = GATEWAY.exec_form("ENTRYPOINT") + GATEWAY.exec_form("CMD")
    assert cmd[0] == "laneway"
    args = parse(cmd[1:], "gateway.Dockerfile CMD")
    check = " ".join(GATEWAY.exec_form("HEALTHCHECK"))
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert url, check
    assert int(url.group(1)) == args.port and str(args.port) in GATEWAY.all("EXPOSE")[0].split()
    app = create_app(GatewayConfig())
    assert url.group(2) == "/readyz" and url.group(2) in {r.path for r in app.routes}
    env = GATEWAY.env()
    copied_policy = next(r.split()[-1] for r in GATEWAY.all("COPY") if r.startswith("policies/"))
    assert env["LANEWAY_POLICY"] == copied_policy, "the installed package has no policies/: point at the copy"


def test_gateway_image_installs_no_worker_dependency() -> None:
    reqs = _gateway_requirements()
    assert not {r.name.lower() for r in reqs} & WORKER_ONLY, reqs
    assert any("pip install --no-deps ." in run for run in GATEWAY.all("RUN")), \
        "pyproject's dependencies include torch: the package must go in without them"


def test_gateway_requirements_carry_pyproject_specifiers() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {r.name.lower(): r for r in map(Requirement, project["dependencies"])}
    test_extra = {Requirement(r).name.lower() for r in project["optional-dependencies"]["test"]}
    for req in _gateway_requirements():
        name = req.name.lower()
        if name in runtime:
            assert req.specifier == runtime[name].specifier, f"{name}: {req.specifier} here, " \
                                                               f"{runtime[name].specifier} in pyproject.toml"
        else:
            # httpx: imported by the CLI at start-up, declared only in [test] (a pyproject gap).
            assert name == "httpx" and name in test_extra, f"{name} is not a dependency in pyproject.toml"
    # A new runtime dependency is either the gateway's too, or listed in WORKER_ONLY: decide.
    missing = {n for n in runtime if n not in WORKER_ONLY} - {r.name.lower() for r in _gateway_requirements()}
    assert not missing, f"pyproject runtime dependencies the gateway image lacks: {sorted(missing)}"


def test_worker_image_variants_and_torch_pin() -> None:
    stages = [rest.split(" AS ")[-1].strip() for rest in WORKER.all("FROM")]
    assert {"torch-cpu", "torch-cuda"} <= set(stages)
    assert any("torch-${VARIANT}" in rest for rest in WORKER.all("FROM"))
    pin = re.search(r'"torch==([\d.]+)"', (ROOT / "Makefile").read_text())
    assert pin and WORKER.arg_default("TORCH_VERSION") == pin.group(1), "the image's torch is the Makefile's"
    cmd = WORKER.exec_form("ENTRYPOINT") + WORKER.exec_form("CMD")
    args = parse(cmd[1:], "worker.Dockerfile CMD")
    check = WORKER.exec_form("HEALTHCHECK")
    assert check[check.index("--service") + 1] == SERVICE_NAME
    assert check[2] == f"127.0.0.1:{args.port}", check
    probe_copy = next(r for r in WORKER.all("COPY") if "grpc_health_probe.py" in r)
    assert probe_copy.split()[-1] == check[1]



def test_the_cuda_worker_image_has_the_c_compiler_triton_builds_its_launchers_with() -> None:
    stage: str | None = None
    runs: dict[str, list[str]] = {}
    for word, rest in WORKER.instructions:
        if word == "FROM":
            stage = rest.split(" AS ")[-1].strip()
        elif word == "RUN" and stage is not None:
            runs.setdefault(stage, []).append(rest)
    installs = " ".join(r for r in runs.get("torch-cuda", []) if "apt-get install" in r)
    assert re.search(r"\bgcc\b", installs) and "libc6-dev" in installs, runs.get("torch-cuda")


# ---- the gateway without the worker's dependencies --------------------------------------------

# Run as `python -c`: an import hook refuses every third-party module the gateway image
# would not have, then the real CLI starts the gateway.
BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not in the gateway image", name=name)
        return None
sys.meta_path.insert(0, Block())
from laneway.cli import main
sys.exit(main({argv!r}))
"""


def _gateway_requirements() -> list[Requirement]:
    lines = (DOCKER / "requirements-gateway.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def _closure(names: set[str]) -> set[str]:
    """Installed distributions these need, transitively (extras and markers aside)."""
    seen: set[str] = set()
    todo = [n.lower().replace("_", "-") for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


def _blocked_modules() -> set[str]:
    allowed = _closure({r.name for r in _gateway_requirements()})
    blocked = set()
    for module, dists in md.packages_distributions().items():
        if module in first_party_modules():
            continue
        if not {d.lower().replace("_", "-") for d in dists} & allowed:
            blocked.add(module)
    return blocked


@pytest.fixture(scope="module")
def gateway_without_worker_deps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    blocked = _blocked_modules()
    assert WORKER_ONLY & blocked == WORKER_ONLY & set(md.packages_distributions()), "the test must block torch"
    port = free_port()
    argv = ["gateway", "--port", str(port), "--worker", f"127.0.0.1:{free_port()}"]
    log = tmp_path_factory.mktemp("slim-gateway") / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", BLOCKER.format(blocked=sorted(blocked), argv=argv)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}",
                                     "LANEWAY_TRACING": "off"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the gateway died without the worker's packages:\n{log.read_text()}"
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.integration
def test_gateway_runs_with_only_the_gateway_image_packages(gateway_without_worker_deps: str) -> None:
    base = gateway_without_worker_deps
    for path in ("/healthz", "/openapi.json", "/metrics"):
        r = httpx.get(f"{base}{path}", timeout=5)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:200]}"
    r = httpx.get(f"{base}/readyz", timeout=5)
    assert r.status_code == 503 and r.json()["status"] == "not ready"  # no worker: honest, not a crash
    r = httpx.post(f"{base}/v1/completions", json={"prompt": "hi"}, timeout=10)
    assert r.status_code in (429, 503), r.text  # no worker to serve it: a capacity answer, not a crash


# ---- the worker image's gRPC health probe ------------------------------------------------------

@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(0).wait()


def _probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DOCKER / "grpc_health_probe.py"), *args], capture_output=True,
                          text=True, timeout=30)


def test_health_probe_passes_only_while_the_worker_is_serving(health_server) -> None:
    address, servicer = health_server
    servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    ok = _probe(address, "--service", SERVICE_NAME)
    assert ok.returncode == 0 and "SERVING" in ok.stdout, ok.stdout + ok.stderr
    servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)  # what a draining worker says
    draining = _probe(address, "--service", SERVICE_NAME)
    assert draining.returncode == 1 and "NOT_SERVING" in draining.stdout, draining.stdout
    unknown = _probe(address, "--service", "no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stdout, unknown.stdout


def test_health_probe_fails_when_nothing_listens() -> None:
    down = _probe(f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stdout, down.stdout + down.stderr

