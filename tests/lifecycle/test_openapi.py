"""The gateway's OpenAPI description: complete, and fuzzed against a real gateway.

Fuzzing: schemathesis generates requests from /openapi.json, valid and invalid (wrong
types, missing fields, out-of-range values, odd path parameters), a bounded number per
operation with a fixed seed, against the shared gateway (tiny worker, Redis, so the Batch
API is live too). Whatever it sends, the gateway must answer with a status below 500
within a bounded time: bad input is the client's problem (4xx) and never a crash or a hang.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
import requests
from hypothesis import HealthCheck, Phase, assume, given, seed, settings

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.routes.openapi import ENDPOINT_PREFIX, openapi_document
from tests.lifecycle.conftest import Cluster

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 40
SEED = 20261123
REQUEST_TIMEOUT_S = 30.0  # a hang fails the test; answers come in milliseconds
SLOW_BY_DESIGN = {"parked", "long"}  # a 60 s batch window, 1900-token streams: the drain tests' endpoints


def test_every_route_the_app_serves_is_described() -> None:
    app = create_app(GatewayConfig())
    served = {(route.path, method.lower()) for route in app.routes
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


def test_gateway_serves_its_description(cluster: Cluster) -> None:
    r = httpx.get(f"{cluster.base}/openapi.json", timeout=10)
    endpoints = ("chat", "inline", "long", "nightly", "parked")
    assert r.status_code == 200 and r.json() == openapi_document(endpoints)
    param = r.json()["paths"]["/v1/endpoints/{endpoint}/completions"]["post"]["parameters"][0]
    assert param["schema"]["enum"] == list(endpoints), "the policy's endpoints, as a generated client needs"


@dataclass
class FuzzLog:
    num_sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)


def test_fuzzing_finds_no_5xx_and_no_hang(cluster: Cluster) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{cluster.base}/openapi.json", timeout=10)
    log = FuzzLog()
    session = requests.Session()
    operations = [op.ok() for op in schema.get_all_operations()]
    # The Batch API under /v1/endpoints/{endpoint}/ is the same handlers as under /v1/: fuzz it once.
    operations = [op for op in operations
                  if not (op.path.startswith(ENDPOINT_PREFIX) and "/completions" not in op.path)]
    try:
        for op in operations:
            strategy = op.as_strategy(generation_mode=GenerationMode.POSITIVE) | \
                op.as_strategy(generation_mode=GenerationMode.NEGATIVE)

            @seed(SEED)
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def fuzz(case) -> None:
                assume((case.path_parameters or {}).get("endpoint") not in SLOW_BY_DESIGN)
                response = case.call(base_url=cluster.base, session=session, timeout=REQUEST_TIMEOUT_S)
                log.num_sent += 1
                log.statuses[response.status_code] += 1
                if response.status_code >= 500:
                    log.server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code} "
                                             f"{response.text[:200]}\n  body: {str(case.body)[:200]}")

            fuzz()
    finally:
        session.close()
        print(f"tried: {log.num_sent} generated requests over {len(operations)} operations "
              f"(<= {EXAMPLES_PER_OPERATION} each, seed {SEED}); observed statuses {dict(log.statuses)}")
    assert not log.server_errors, "\n".join(log.server_errors[:10]) + "\n" + cluster.logs()
    assert httpx.get(f"{cluster.base}/readyz", timeout=5).status_code == 200, cluster.logs()
