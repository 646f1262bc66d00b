"""`laneway worker`: one process serving one model over gRPC.

Builds the engine once at start-up (workers/build.py, from the WorkerConfig of
workers/config.py; the warm-up there runs every kind of pass before SERVING, and a failure
there stops the process), then serves the Worker service and the standard health service
until SIGTERM/SIGINT, draining first.

An engine failure while serving is never silent: health turns NOT_SERVING before any
stream hears of it, the running streams end with INTERNAL, the registry entry is
withdrawn, and the process exits with EXIT_ENGINE_FAILED so its supervisor (`laneway
serve`, Kubernetes) starts a fresh one. A worker whose engine died never lingers as SERVING.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from workers.build import build_engine_on_its_thread
from workers.built_engine import BuiltEngine
from workers.config import WorkerConfig, parse_size
from workers.context_length import AUTO, parse_max_model_len
from workers.engine.config import CacheConfig, SchedulerConfig
from workers.servicer import SERVICE_NAME, WorkerServicer, add_worker_service
from workers.telemetry import WorkerTelemetry

if TYPE_CHECKING:
    from workers.engine.tokenizer import Tokenizer
    from workers.grammar.compiler import GrammarCompiler
    from workers.wire import ModelLimits

log = logging.getLogger("laneway.worker")
EXIT_ENGINE_FAILED = 70  # EX_SOFTWARE: the engine failed while serving; restart this worker
FAILED_STREAMS_GRACE_S = 5.0  # after an engine failure, time for the failed streams to send their errors


async def serve(cfg: WorkerConfig, built: BuiltEngine | None = None) -> int:
    """Serve until SIGTERM/SIGINT (drain, then 0) or an engine failure (EXIT_ENGINE_FAILED).
    `built`: an engine built by the caller instead of from cfg (tests inject faulty runners)."""
    from workers.wire import ModelLimits

    loop, tokenizer, model_config, sched_cfg = built if built is not None else build_engine_on_its_thread(cfg)
    telemetry = WorkerTelemetry.create(loop, cfg.tracing)  # before start: the engine reports steps to it
    health_servicer = health.aio.HealthServicer()
    engine_failed = asyncio.Event()
    loop.on_fatal = _on_engine_failure(asyncio.get_running_loop(), health_servicer, engine_failed)
    loop.start()
    worker_id = f"{socket.gethostname()}:{cfg.port}:{uuid.uuid4().hex[:6]}"
    limits = ModelLimits.of(model_config, sched_cfg.context_length)
    servicer = WorkerServicer(loop, tokenizer, limits, model_name=cfg.model, block_size=cfg.cache.block_size,
                              max_num_seqs=sched_cfg.max_num_seqs, worker_id=worker_id, telemetry=telemetry,
                              grammars=_grammar_compiler(tokenizer, limits))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_worker_service(servicer, server)  # undecodable Generate bytes: INVALID_ARGUMENT, like bad input
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if bound == 0:
        raise SystemExit(f"cannot bind {cfg.host}:{cfg.port}")
    await server.start()
    if cfg.metrics_port:
        telemetry.serve_metrics(cfg.host, cfg.metrics_port)
    if loop.fatal_error is None:  # an engine that failed already has set NOT_SERVING: keep it
        await _set_health(health_servicer, health_pb2.HealthCheckResponse.SERVING)
    print(f"laneway worker {worker_id} serving {cfg.model} on {cfg.host}:{cfg.port}", flush=True)
    registration = None
    if cfg.registry_url:
        from workers.registry import Advert, Registration

        advert = Advert(cfg.advertise or _default_advertise(cfg), cfg.model, sched_cfg.max_num_seqs, worker_id)
        registration = Registration(cfg.registry_url, advert, cfg.registry_ttl_s)
        await registration.start()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await _first_of(stop, engine_failed)
    failed = engine_failed.is_set()
    # Drain: report NOT_SERVING first so gateways stop sending, refuse new work, let running finish.
    if registration is not None:
        await registration.withdraw()  # registry gateways drop it now, not after the TTL
    servicer.is_draining = True
    await _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    if failed:
        log.error("engine failed (%s): NOT_SERVING; exiting with %d so a supervisor restarts this worker",
                  loop.fatal_error.__class__.__name__, EXIT_ENGINE_FAILED)
        await _until(lambda: servicer.num_active_streams == 0, FAILED_STREAMS_GRACE_S)
    # The server still answers during the delay, so probes and gateways read NOT_SERVING (and
    # Generate gets UNAVAILABLE, which gateways retry elsewhere) instead of a refused connection.
    await asyncio.sleep(cfg.drain_delay_s)
    # No new RPCs from here; running streams finish, or are cancelled at the grace (their
    # sequences are aborted and their KV blocks freed by the servicer's finally).
    await server.stop(grace=cfg.drain_timeout_s)
    loop.stop()
    telemetry.shutdown()  # flushes the spans still queued
    return EXIT_ENGINE_FAILED if failed else 0


def _on_engine_failure(aio_loop: asyncio.AbstractEventLoop, health_servicer: health.aio.HealthServicer,
                       failed: asyncio.Event) -> Callable[[BaseException], None]:
    """EngineLoop.on_fatal: runs on the engine thread and returns once health says NOT_SERVING,
    so a gateway that checks health on a stream's error already reads the worker as down."""

    def on_fatal(exc: BaseException) -> None:
        try:
            asyncio.run_coroutine_threadsafe(
                _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING), aio_loop).result(5.0)
        finally:
            aio_loop.call_soon_threadsafe(failed.set)

    return on_fatal


async def _set_health(health_servicer: health.aio.HealthServicer, status: int) -> None:
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _grammar_compiler(tokenizer: Tokenizer, limits: ModelLimits) -> GrammarCompiler | None:
    """Structured outputs need the vocabulary in the grammar engine's terms (about a second
    for a large Hugging Face vocabulary). A tokenizer it cannot read leaves the worker
    serving everything else; requests with a constraint then get INVALID_ARGUMENT."""
    try:
        from workers.grammar.compiler import GrammarCompiler  # the worker image's: see workers/grammar

        return GrammarCompiler.for_tokenizer(tokenizer, limits.vocab_size, limits.eos_token_ids)
    except ValueError as exc:
        log.warning("structured outputs disabled: %s", exc)
        return None


def _default_advertise(cfg: WorkerConfig) -> str:
    host = socket.gethostname() if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    return f"{host}:{cfg.port}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny",
                   help="preset name (tiny, small), a local HF model directory, or sim:PRESET "
                        "(SIMULATED: h100-llama3-8b, h100-llama3-70b-tp4, 8xb200-moe, cpu-small)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--kv-cache-memory", type=parse_size, default=None,
                   help="KV pool size, e.g. 256MB (default: a fraction of free memory)")
    p.add_argument("--kv-cache-fraction", type=float, default=0.1)
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("--max-num-batched-tokens", type=int, default=512)
    p.add_argument("--max-model-len", type=parse_max_model_len, default=AUTO, help="context length in tokens, or auto: "
                   "the model's, bounded by what the KV cache holds (the start-up log says which bound won)")
    p.add_argument("--no-prefix-caching", action="store_true")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--step-cost", default="auto",
                   help="the step planner's time model: auto (fit from the warm-up at start), off (size steps "
                        "by tokens only), or a cost JSON saved by `laneway calibrate --out`")
    p.add_argument("--registry-url", default=os.environ.get("LANEWAY_REDIS_URL") or None,
                   help="announce this worker in this Redis so gateways find it (default: $LANEWAY_REDIS_URL)")
    p.add_argument("--advertise", default=None, help="host:port gateways dial (default: --host:--port)")
    p.add_argument("--registry-ttl", type=float, default=6.0,
                   help="seconds without a heartbeat after which gateways drop this worker")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus /metrics on this port (0: off)")
    p.add_argument("--drain-delay", type=float, default=0.0,
                   help="on SIGTERM, seconds to report NOT_SERVING and refuse new work before the server stops "
                        "accepting calls (so health probes see it)")
    p.add_argument("--drain-grace", type=float, default=WorkerConfig.drain_timeout_s,
                   help="on SIGTERM, seconds running requests get to finish before they are aborted")


def config_from_args(a: argparse.Namespace) -> WorkerConfig:
    """A flag value a config refuses (ValueError naming it) stops the worker with that message."""
    try:
        return WorkerConfig(
            model=a.model, host=a.host, port=a.port, dtype=a.dtype, device=a.device, num_threads=a.num_threads,
            scheduler=SchedulerConfig(max_num_seqs=a.max_num_seqs, max_num_batched_tokens=a.max_num_batched_tokens,
                                      max_model_len=a.max_model_len),
            cache=CacheConfig(block_size=a.block_size, kv_cache_memory_bytes=a.kv_cache_memory,
                              kv_cache_memory_fraction=a.kv_cache_fraction,
                              enable_prefix_caching=not a.no_prefix_caching),
            registry_url=a.registry_url, advertise=a.advertise, registry_ttl_s=a.registry_ttl,
            metrics_port=a.metrics_port, drain_delay_s=a.drain_delay, drain_timeout_s=a.drain_grace,
            step_cost=a.step_cost,
        )
    except ValueError as exc:
        raise SystemExit(f"laneway worker: {exc}") from None


def run(a: argparse.Namespace) -> int:
    from workers.parent_watch import die_with_parent

    die_with_parent()  # started by `laneway serve`: never outlive it
    from workers.omp_policy import apply_wait_policy

    apply_wait_policy(a.num_threads)  # before torch loads: libgomp reads it once
    logging.basicConfig(level=os.environ.get("LANEWAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    # uvloop: the gRPC servicer's loop in C. Every token crosses it (the engine thread's
    # call_soon_threadsafe, then the stream's write), and uvloop coalesces the cross-thread
    # wake-ups that asyncio's loop pays one self-pipe write each for.
    return uvloop.run(serve(config_from_args(a)))
