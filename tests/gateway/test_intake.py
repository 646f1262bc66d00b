"""What the gateway tells the worker about each request: its endpoint's targets and its lane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from laneway_proto import worker_pb2 as pb
from tests.telemetry.fake_worker import FakeWorker
from tests.telemetry.gateway_factory import make_app

CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


@pytest.fixture
def sent() -> Iterator[list[pb.GenerateRequest]]:
    """Requests of the default policy, as the worker received them (in order)."""
    worker = FakeWorker(num_tokens=2).start()
    try:
        with TestClient(make_app(worker)) as client:
            for path, body in [
                ("/v1/endpoints/support-draft/chat/completions", {**CHAT, "stream": True}),
                ("/v1/endpoints/support-draft/chat/completions", CHAT),
                ("/v1/endpoints/inline-completion/completions", {"prompt": "def f(", "max_tokens": 4}),
                ("/v1/endpoints/nightly-labeling/completions", {"prompt": "label this", "max_tokens": 4}),
            ]:
                with client.stream("POST", path, json=body) as r:
                    assert r.status_code == 200
                    r.read()
        yield worker.servicer.requests
    finally:
        worker.stop()


def test_each_request_carries_its_endpoints_latency_targets(sent: list[pb.GenerateRequest]) -> None:
    targets = [(r.endpoint, r.targets.ttft_ms, r.targets.tbt_ms) for r in sent]
    assert targets == [
        ("support-draft", 1500.0, 150.0),
        ("support-draft", 1500.0, 0.0),  # answered in one body: no gaps anyone watches
        ("inline-completion", 300.0, 0.0),
        ("nightly-labeling", 0.0, 0.0),
    ]


def test_the_bulk_lane_carries_its_minimum_share(sent: list[pb.GenerateRequest]) -> None:
    lanes = {r.lane.name: r.lane for r in sent}
    assert lanes["bulk"].preemptible and lanes["bulk"].min_share == pytest.approx(0.1)
    assert lanes["streaming"].min_share == 0.0 and lanes["interactive"].min_share == 0.0
