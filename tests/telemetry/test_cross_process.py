"""One request across a real gateway process and a real worker process is one trace.

Both processes write JSON lines span files into the test's data directory (no collector),
the way a single machine keeps traces; the test reads them back like `laneway review` does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from laneway.procs import Proc, free_port, laneway_cmd, wait_ready
from telemetry import SpanRecord, read_spans
from telemetry import attributes as attr
from tests.telemetry.metrics_scrape import sample

pytestmark = pytest.mark.integration

CLIENT_TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4737"
CLIENT_SPAN_ID = "10f067aa0ba902b8"
NUM_SPANS = 7  # gateway: server, lane queue, dispatch; worker: server, engine queue, prefill, decode


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    tmp = tmp_path_factory.mktemp("traced")
    env = {"LANEWAY_DATA_DIR": str(tmp / "data"), "OTEL_BSP_SCHEDULE_DELAY": "50", "LANEWAY_TRACING": "on",
           "LANEWAY_TRACE_SAMPLE_RATIO": "1"}
    metrics_port = free_port()
    worker_port = free_port()
    worker = Proc("worker", laneway_cmd("worker", "--port", str(worker_port), "--model", "tiny", "--kv-cache-memory",
                                        "16MB", "--num-threads", "1", "--metrics-port", str(metrics_port)),
                  worker_port, tmp / "worker.log", env=env).start().wait_port()
    gateway_port = free_port()
    gateway = Proc("gateway", laneway_cmd("gateway", "--port", str(gateway_port), "--worker", worker.address),
                   gateway_port, tmp / "gateway.log", env=env).start().wait_port()
    try:
        wait_ready(f"http://127.0.0.1:{gateway_port}")
        yield f"http://127.0.0.1:{gateway_port}", metrics_port, tmp / "data" / "traces"
    finally:
        gateway.stop()
        worker.stop()


def _spans_of(trace_dir: Path, trace_id: str, expected: int, timeout_s: float = 10.0) -> list[SpanRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        spans = [s for s in read_spans([trace_dir]).spans if s.trace_id == trace_id] if trace_dir.exists() else []
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_gateway_and_worker_spans_form_one_tree(stack: tuple[str, int, Path]) -> None:
    base, _, trace_dir = stack
    r = httpx.post(f"{base}/v1/endpoints/support-draft/chat/completions", timeout=30,
                   headers={"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"},
                   json={"messages": [{"role": "user", "content": "trace me"}], "max_tokens": 6, "ignore_eos": True})
    assert r.status_code == 200, r.text
    spans = _spans_of(trace_dir, CLIENT_TRACE_ID, NUM_SPANS)
    by_key = {(s.service, s.kind, s.name): s for s in spans}
    assert len(spans) == NUM_SPANS == len(by_key), sorted(by_key)
    gw_server = next(s for s in spans if s.service == "laneway-gateway" and s.kind == "SERVER")
    queue = by_key[("laneway-gateway", "INTERNAL", attr.LANE_QUEUE_SPAN)]
    dispatch = by_key[("laneway-gateway", "CLIENT", attr.GENERATE_RPC_SPAN)]
    wk_server = by_key[("laneway-worker", "SERVER", attr.GENERATE_RPC_SPAN)]
    engine = [by_key[("laneway-worker", "INTERNAL", n)]
              for n in (attr.ENGINE_QUEUE_SPAN, attr.ENGINE_PREFILL_SPAN, attr.ENGINE_DECODE_SPAN)]
    assert gw_server.parent_span_id == CLIENT_SPAN_ID
    assert queue.parent_span_id == dispatch.parent_span_id == gw_server.span_id
    assert wk_server.parent_span_id == dispatch.span_id  # the traceparent crossed the gRPC call
    assert all(s.parent_span_id == wk_server.span_id for s in engine)
    # The engine's phases follow one another inside the worker's span.
    assert [s.start_ns <= s.end_ns for s in engine] == [True] * 3
    assert engine[0].end_ns == engine[1].start_ns and engine[1].end_ns == engine[2].start_ns
    assert wk_server.start_ns <= engine[0].start_ns and engine[2].end_ns <= wk_server.end_ns
    assert engine[1].attributes[attr.NUM_PREFILL_CHUNKS] >= 1
    assert engine[2].attributes[attr.USAGE_OUTPUT_TOKENS] == 6
    assert wk_server.attributes[attr.ENDPOINT] == "support-draft"
    assert wk_server.attributes[attr.BATCH_ID] == gw_server.attributes[attr.BATCH_ID]
    assert gw_server.attributes[attr.USAGE_OUTPUT_TOKENS] == 6 and gw_server.attributes[attr.OUTCOME] == "ok"


def test_worker_serves_its_metrics_on_the_metrics_port(stack: tuple[str, int, Path]) -> None:
    base, metrics_port, _ = stack
    assert httpx.post(f"{base}/v1/endpoints/inline-completion/completions", timeout=30,
                      json={"prompt": "count me", "max_tokens": 3, "ignore_eos": True}).status_code == 200
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert sample(text, "laneway_request_finished_total", endpoint="inline-completion", lane="interactive",
                  finished_reason="length") == 1
    total = sample(text, "laneway_kv_cache_total_blocks")
    assert total is not None and total > 0
    steps = sample(text, "laneway_iteration_batch_size_count")
    assert steps is not None and steps >= 3


def test_review_of_the_recorded_traces(stack: tuple[str, int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from laneway.cli import main

    base, _, trace_dir = stack
    for i in range(5):
        time.sleep(0.02)  # more than the lane's 10 ms window since the last arrival: the lane is idle
        with httpx.stream("POST", f"{base}/v1/endpoints/support-draft/chat/completions", timeout=30,
                          json={"messages": [{"role": "user", "content": f"review {i}"}], "max_tokens": 4,
                                "ignore_eos": True, "stream": True}) as r:
            assert r.status_code == 200
            r.read()
    deadline = time.monotonic() + 10
    while True:
        spans = read_spans([trace_dir]).spans
        served = sorted(s.attributes[attr.RESPONSE_TIME_TO_FIRST_CHUNK] * 1000.0 for s in spans
                        if s.kind == "SERVER" and s.attributes.get(attr.ENDPOINT) == "support-draft"
                        and attr.RESPONSE_TIME_TO_FIRST_CHUNK in s.attributes)
        if len(served) >= 6 or time.monotonic() > deadline:  # 5 here, 1 from the tree test
            break
        time.sleep(0.1)
    assert main(["review", str(trace_dir), "--format", "json"]) in (0, 1)
    row = next(r for r in json.loads(capsys.readouterr().out)["runs"][0]["rows"] if r["endpoint"] == "support-draft")
    assert row["num_requests"] == len(served) == 6 and row["lane"] == "streaming" and row["window"] == "10 ms"
    assert row["ttft_p50_ms"] == served[2] and row["ttft_p95_ms"] == served[-1]  # nearest rank of 6
    assert row["verdict"] == "within budget"  # 1500 ms budget, a tiny model on an idle worker
    assert row["queue_p50_ms"] < 9.0  # each found the lane idle and left at once (wait_when_idle), no window


def test_a_real_requests_ttft_splits_into_stages_that_add_up(stack: tuple[str, int, Path]) -> None:
    from laneway.review.ttft_stages import STAGES, staged_requests

    base, _, trace_dir = stack
    trace_id = "6c0b3a1f2e4d5c6b7a8998a7b6c5d4e3"
    r = httpx.post(f"{base}/v1/endpoints/support-draft/chat/completions", timeout=30,
                   headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN_ID}-01"},
                   json={"messages": [{"role": "user", "content": "stage me"}], "max_tokens": 4, "ignore_eos": True})
    assert r.status_code == 200, r.text
    spans = _spans_of(trace_dir, trace_id, NUM_SPANS)
    [staged] = staged_requests(spans)
    server = next(s for s in spans if s.kind == "SERVER" and s.scope == attr.GATEWAY_SCOPE)
    assert staged.endpoint == "support-draft"
    assert staged.ttft_ms == pytest.approx(server.attributes[attr.RESPONSE_TIME_TO_FIRST_CHUNK] * 1000.0)
    assert sum(staged.stages_ms) == pytest.approx(staged.ttft_ms, abs=0.01)
    # One machine, one clock: each stage, even those across the two processes, is causal.
    stages = dict(zip(STAGES, staged.stages_ms, strict=True))
    assert all(ms >= 0.0 for ms in stages.values()), stages
    assert stages["prefill"] > 0.0 and stages["to worker"] > 0.0 and stages["to gateway"] > 0.0, stages
