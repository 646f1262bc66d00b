"""Worker telemetry: the engine stamps times and step stats; spans and metrics are built from them."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import generate_latest

from telemetry import TracingConfig
from telemetry import attributes as attr
from tests.telemetry.metrics_scrape import sample
from tests.workers.engine.engine_factory import greedy_seq, make_engine
from workers.engine.engine import StepStats, drain
from workers.engine.engine_loop import EngineLoop
from workers.engine.sequence import LanePolicy, Sequence
from workers.telemetry import StreamEnd, WorkerTelemetry
from workers.telemetry.sequence_spans import record_sequence_spans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def test_engine_stamps_prefill_chunks_and_token_times() -> None:
    engine = make_engine(budget=7)
    steps: list[StepStats] = []
    engine.on_step = steps.append
    seq = greedy_seq("a", list(range(1, 21)), max_tokens=5)
    drain(engine, [seq])
    assert seq.num_prefill_chunks == 3  # 20 prompt tokens in chunks of at most 7
    assert seq.first_scheduled_time is not None and seq.first_token_time is not None
    assert seq.finish_time is not None
    assert seq.arrival_time <= seq.first_scheduled_time <= seq.first_token_time <= seq.finish_time
    assert [(s.num_seqs, s.num_batched_tokens) for s in steps] == [(1, 7), (1, 7), (1, 6), (1, 1), (1, 1), (1, 1),
                                                                   (1, 1)]
    assert all(s.duration_s > 0 and s.num_preempted == 0 for s in steps)


def _seq(**times: float | None) -> Sequence:
    seq = Sequence("req-1", [1, 2, 3], lane=LanePolicy(name="streaming", priority=1))
    seq.arrival_time = 100.0
    for name, value in times.items():
        setattr(seq, name, value)
    return seq


def _record(seq: Sequence, end: StreamEnd, traceparent: str) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    record_sequence_spans(provider.get_tracer(attr.WORKER_SCOPE), parent, seq, end)
    return list(exporter.get_finished_spans())


def _end(reason: str = "length", ended_s: float = 100.5) -> StreamEnd:
    return StreamEnd(received_s=99.99, ended_s=ended_s, reason=reason, endpoint="chat", batch_id="batch-1",
                     worker_id="w1")


def test_worker_spans_rebuild_the_sequence_timeline_under_the_gateways_span() -> None:
    seq = _seq(first_scheduled_time=100.01, first_token_time=100.05, finish_time=100.4, num_prefill_chunks=2)
    spans = {s.name: s for s in _record(seq, _end(), f"00-{TRACE_ID}-{PARENT_ID}-01")}
    server = spans[attr.GENERATE_RPC_SPAN]
    assert server.kind == SpanKind.SERVER
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT_ID
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    timeline = {name: (spans[name].start_time, spans[name].end_time)
                for name in (attr.ENGINE_QUEUE_SPAN, attr.ENGINE_PREFILL_SPAN, attr.ENGINE_DECODE_SPAN)}
    assert timeline == {attr.ENGINE_QUEUE_SPAN: (100_000_000_000, 100_010_000_000),
                        attr.ENGINE_PREFILL_SPAN: (100_010_000_000, 100_050_000_000),
                        attr.ENGINE_DECODE_SPAN: (100_050_000_000, 100_400_000_000)}
    assert all(spans[n].parent.span_id == server.context.span_id for n in timeline)  # type: ignore[union-attr]
    assert spans[attr.ENGINE_PREFILL_SPAN].attributes[attr.NUM_PREFILL_CHUNKS] == 2  # type: ignore[index]
    a = server.attributes or {}
    assert (a[attr.ENDPOINT], a[attr.LANE], a[attr.OUTCOME], a[attr.BATCH_ID]) == ("chat", "streaming", "ok",
                                                                                   "batch-1")
    assert a[attr.ENGINE_QUEUE_MS] == pytest.approx(10.0)


def test_a_request_cancelled_in_the_engine_queue_has_only_a_queue_span() -> None:
    spans = _record(_seq(), _end("cancelled", ended_s=100.2), f"00-{TRACE_ID}-{PARENT_ID}-01")
    assert sorted(s.name for s in spans) == [attr.ENGINE_QUEUE_SPAN, attr.GENERATE_RPC_SPAN]
    queue = next(s for s in spans if s.name == attr.ENGINE_QUEUE_SPAN)
    assert queue.end_time == 100_200_000_000
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert server.attributes is not None and server.attributes[attr.OUTCOME] == attr.CANCELLED


def test_an_unsampled_gateway_trace_records_nothing_on_the_worker() -> None:
    seq = _seq(first_scheduled_time=100.01, first_token_time=100.05, finish_time=100.4)
    assert _record(seq, _end(), f"00-{TRACE_ID}-{PARENT_ID}-00") == []


def _run_loop(loop: EngineLoop, seqs: list[Sequence], timeout_s: float = 30.0) -> None:
    done = threading.Semaphore(0)
    for seq in seqs:
        seq.on_output = lambda out: done.release() if out.is_finished else None
        loop.add(seq)
    deadline = time.monotonic() + timeout_s
    for _ in seqs:
        assert done.acquire(timeout=max(0.0, deadline - time.monotonic())), "engine did not finish"


def test_worker_metrics_after_known_traffic() -> None:
    engine = make_engine(num_blocks=8, block_size=4, budget=16)
    loop = EngineLoop(engine)
    exporter = InMemorySpanExporter()
    telemetry = WorkerTelemetry(TracingConfig(service_name="laneway-worker", span_exporter=exporter), loop)
    seqs = [greedy_seq("a", list(range(1, 13)), max_tokens=12, lane="streaming"),
            greedy_seq("b", list(range(20, 32)), max_tokens=12, lane="streaming")]
    loop.start()
    try:
        _run_loop(loop, seqs)
        time.sleep(0.05)  # the loop publishes its load snapshot after delivering outputs
        for seq in seqs:
            telemetry.stream_ended(seq, StreamEnd(received_s=seq.arrival_time, ended_s=time.time(), reason="length",
                                                  endpoint="chat", batch_id="", worker_id="w"))
        port = telemetry.serve_metrics("127.0.0.1", 0)
        served = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        loop.stop()
        telemetry.shutdown()
    text = generate_latest(telemetry.metrics.registry).decode()
    assert sample(served, "laneway_kv_cache_total_blocks") == 8
    assert engine.num_preemptions >= 1  # 8 blocks cannot hold both sequences at full length
    assert sample(text, "laneway_num_preemptions_total") == engine.num_preemptions
    queried = engine.scheduler.block_manager.num_prefix_queried_tokens
    assert sample(text, "laneway_prefix_cache_queries_total") == queried
    assert sample(text, "laneway_num_requests_running") == 0 and sample(text, "laneway_kv_cache_used_blocks") == 0
    # Every computed token went through some step: 2 prompts of 12, 11 decodes each, plus recompute.
    tokens = sample(text, "laneway_iteration_tokens_sum")
    assert tokens is not None and tokens >= 2 * 12 + 2 * 11
    assert sample(text, "laneway_request_finished_total", endpoint="chat", lane="streaming",
                  finished_reason="length") == 2
    assert sample(text, "laneway_request_decode_time_seconds_count", endpoint="chat", lane="streaming") == 2
    assert len([s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]) == 2  # root-sampled
