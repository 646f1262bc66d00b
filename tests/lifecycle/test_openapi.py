"""The gateway's OpenAPI description: complete, exact, and checked against a real gateway.

schemathesis runs with every check (as `schemathesis run --checks all`) against the shared
gateway (tiny worker, Redis, so the Batch API is live too), a bounded number of cases per
operation with a fixed seed: no server error and no hang, every answer as the description
says (statuses, content types, bodies, headers), schema-valid requests served (or refused
only by a limit the description lists), schema-invalid ones refused, OPTIONS and 405
naming exactly the documented methods, created resources readable until deleted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.batches.routes import _window_seconds
from gateway.config import GatewayConfig
from gateway.errors import APIError
from gateway.routes.openapi import COMPLETION_WINDOW_PATTERN, LIMIT_CODES, openapi_document
from tests.lifecycle.conftest import Cluster

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 10
SEED = 20261123
REQUEST_TIMEOUT_S = 30.0  # a hang fails the test; answers come in well under a second
ROOT = Path(__file__).resolve().parents[2]


def test_every_route_the_app_serves_is_described() -> None:
    app = create_app(GatewayConfig())
    served = {(re.sub(r":\w+}", "}", route.path), method.lower()) for route in app.routes  # {model:path}
              for method in (getattr(route, "methods", None) or ()) if method != "HEAD"}
    described = {(path, method) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert served == described, f"served, not described: {sorted(served - described)}; " \
                                f"described, not served: {sorted(described - served)}"


def test_generation_bodies_are_the_pydantic_models() -> None:
    doc = openapi_document()
    body = doc["paths"]["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CompletionRequest"}
    schema = doc["components"]["schemas"]["CompletionRequest"]
    assert schema["required"] == ["prompt"] and "max_tokens" in schema["properties"]


def test_bodies_refuse_unknown_fields_and_list_the_limits_they_cannot_state() -> None:
    doc = openapi_document()
    for name in ("CompletionRequest", "ChatCompletionRequest"):
        assert doc["components"]["schemas"][name]["additionalProperties"] is False
    described_400 = doc["paths"]["/v1/completions"]["post"]["responses"]["400"]["description"]
    assert all(code in described_400 for code in LIMIT_CODES)


@pytest.mark.parametrize("page, most", [("/v1/files", 10_000), ("/v1/batches", 100)])
def test_list_limits_are_bounded_as_the_handlers_bound_them(page: str, most: int) -> None:
    params = openapi_document()["paths"][page]["get"]["parameters"]
    limit = next(p for p in params if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, most)


def test_the_completion_window_pattern_is_what_the_handler_takes() -> None:
    pattern = re.compile(COMPLETION_WINDOW_PATTERN)
    for unit in ("h", "m", "s"):
        for n in [*range(0, 120), *range(1380, 1500), *range(86_300, 86_500)]:
            for text in (f"{n}{unit}", f"00{n}{unit}"):
                try:
                    _window_seconds(text)
                    taken = True
                except APIError:
                    taken = False
                assert taken == bool(pattern.fullmatch(text)), text
    assert not pattern.fullmatch("٣h"), "only ASCII digits, as the handler"


def test_gateway_serves_its_description(cluster: Cluster) -> None:
    r = httpx.get(f"{cluster.base}/openapi.json", timeout=10)
    endpoints = ("chat", "inline", "long", "nightly", "parked")
    assert r.status_code == 200 and r.json() == openapi_document(endpoints)
    param = r.json()["paths"]["/v1/endpoints/{endpoint}/completions"]["post"]["parameters"][0]
    assert param["schema"]["enum"] == list(endpoints), "the policy's endpoints, as a generated client needs"


def test_options_and_405_name_exactly_the_documented_methods(cluster: Cluster) -> None:
    doc = httpx.get(f"{cluster.base}/openapi.json", timeout=10).json()
    values = {"endpoint": "inline", "file_id": "file-x", "batch_id": "batch_x", "model": "tiny"}
    for template, ops in doc["paths"].items():
        path = re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)
        documented = {method.upper() for method in ops} | ({"HEAD"} if "get" in ops else set())
        for method in ("OPTIONS", "PUT", "PATCH"):
            r = httpx.request(method, f"{cluster.base}{path}", timeout=10)
            assert r.status_code == 405, (method, template, r.status_code)
            allowed = {m.strip() for m in r.headers["allow"].split(",")}
            assert allowed == documented, (method, template, allowed)


def test_schemathesis_with_every_check(cluster: Cluster, tmp_path: Path) -> None:
    """schemathesis `run --checks all` against the served description: every phase (examples,
    coverage, fuzzing, stateful), valid and invalid requests. positive_data_acceptance is
    replaced by the same check that also takes a 400 whose code is one of the limits the
    description lists, and a hook keeps requests cheap (schemathesis_hooks.py)."""
    cmd = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", "run",
           f"{cluster.base}/openapi.json", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--generation-database", "none",
           "--request-timeout", str(REQUEST_TIMEOUT_S), "--no-color", "--warnings", "off"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.lifecycle.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "proto")])}
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    summary = run.stdout[-8000:]
    print(summary)
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated and int(generated.group(1)) >= 500, f"schemathesis hardly ran:\n{summary}\n{run.stderr[-2000:]}"
    assert run.returncode == 0, f"{summary}\n{cluster.logs()}"
    assert httpx.get(f"{cluster.base}/readyz", timeout=5).status_code == 200, cluster.logs()
