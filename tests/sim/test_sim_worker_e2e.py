"""A simulated worker process serves requests through a real gateway, end to end, labelled as such."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from laneway.load.arrivals import Burst
from laneway.load.lengths import Fixed
from laneway.load.open_loop import Target, run_open_loop
from laneway.load.workload import EndpointWorkload, Workload
from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.support.processes import Proc, start_gateway, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    tmp = tmp_path_factory.mktemp("sim")
    worker = start_worker(tmp, "--max-model-len", "1024", model="sim:cpu-small", kv_cache_memory="32MB")
    try:
        gateway = start_gateway(tmp, [worker])
        try:
            yield worker, f"http://127.0.0.1:{gateway.port}"
        finally:
            gateway.stop()
    finally:
        worker.stop()


def test_a_streamed_request_gets_exactly_the_tokens_it_asked_for(sim_stack: tuple[Proc, str]) -> None:
    _, base = sim_stack
    chunks = []
    with httpx.stream("POST", f"{base}/v1/endpoints/chat/completions",
                      json={"prompt": "hello simulated world", "max_tokens": 12, "stream": True,
                            "stream_options": {"include_usage": True}}, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(line)
    events = [json.loads(c[6:]) for c in chunks]
    text = "".join(e["choices"][0].get("text", "") for e in events if e["choices"])
    assert len(text) == 12 and text.isalpha() and text.islower()  # meaningless letters, never eos
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == 12


def test_the_worker_and_gateway_say_simulated(sim_stack: tuple[Proc, str]) -> None:
    worker, base = sim_stack
    with grpc.insecure_channel(worker.address) as channel:
        info = pb_grpc.WorkerStub(channel).Info(pb.InfoRequest(), timeout=5)
    assert info.model == "sim:cpu-small"
    assert "sim:cpu-small" in {m["id"] for m in httpx.get(f"{base}/v1/models", timeout=5).json()["data"]}
    assert "SIMULATED worker sim:cpu-small" in Path(worker.log_path).read_text()


def test_laneway_load_counts_every_request_through_the_real_gateway(sim_stack: tuple[Proc, str]) -> None:
    _, base = sim_stack
    chat = EndpointWorkload("chat", Burst(0.5, 3), Fixed(40), Fixed(6))
    inline = EndpointWorkload("inline-completion", Burst(0.5, 2), Fixed(20), Fixed(4), stream=False)
    w = Workload((chat, inline), duration_s=1.0, seed=2, api="completions")
    run = asyncio.run(run_open_loop(Target(base), w, w.requests()))
    assert len(run.results) == 10 and all(r.ok for r in run.results), [r.error for r in run.results]
    assert sorted(r.output_tokens for r in run.results) == [4] * 4 + [6] * 6
    assert all(len(r.token_times) >= 1 for r in run.results if r.endpoint == "chat")
