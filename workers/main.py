"""`laneway worker`: one process serving one model over gRPC.

Builds the engine (model, KV pool, block manager, scheduler) once at start-up, then serves
the Worker service and the standard health service until SIGTERM/SIGINT, draining first.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from laneway_proto import worker_pb2_grpc as pb_grpc
from workers.engine.config import CacheConfig, CacheRuntime, SchedulerConfig
from workers.engine.engine_loop import EngineLoop
from telemetry import TracingConfig
from workers.servicer import WorkerServicer
from workers.telemetry import WorkerTelemetry

if TYPE_CHECKING:  # torch is imported only when an engine is built (sim workers never need it)
    import torch

log = logging.getLogger("laneway.worker")
SERVICE_NAME = "laneway.worker.v1.Worker"


@dataclass(frozen=True)
class WorkerConfig:
    model: str = "tiny"
    host: str = "127.0.0.1"
    port: int = 50051
    dtype: str | None = None  # None: the model's own (presets: tiny float32, small bfloat16)
    device: str = "auto"  # auto: cuda when torch sees a GPU, else cpu; or any torch device ("cuda:1")
    scheduler: SchedulerConfig = SchedulerConfig()
    cache: CacheConfig = CacheConfig()
    num_threads: int | None = None
    drain_timeout_s: float = 10.0  # running streams get this long after the server stops accepting RPCs
    drain_delay_s: float = 0.0  # before that, NOT_SERVING + refusing new work while health probes still answer
    registry_url: str | None = None  # Redis to announce this worker in (gateways discover it there)
    advertise: str | None = None  # host:port gateways should dial; default host:port above
    registry_ttl_s: float = 6.0  # a worker silent this long leaves the gateways' rotation
    metrics_port: int = 0  # Prometheus /metrics on host:metrics_port; 0: not served
    tracing: TracingConfig | None = None  # None: from the environment (OTEL_*, LANEWAY_TRACE_*)


def parse_size(text: str) -> int:
    """'64MB', '1.5GiB', '1000000' -> bytes."""
    units = {"k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
             "g": 10**9, "gb": 10**9, "gib": 2**30, "": 1, "b": 1}
    t = text.strip().lower()
    num = t.rstrip("abgikm")
    unit = t[len(num):]
    try:
        if unit not in units:
            raise ValueError(unit)
        size = float(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read size {text!r}; use e.g. 512MB or 2GiB") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return int(size * units[unit])


def build_engine(cfg: WorkerConfig):
    """Load the model and size the KV pool; returns (EngineLoop, tokenizer, model_config)."""
    if cfg.model.startswith("sim:"):  # SIMULATED: cost-model forward passes, same engine (workers/sim)
        from workers.sim.build import build_sim_engine

        return build_sim_engine(cfg)
    import torch

    from workers.engine.block_manager import BlockManager
    from workers.engine.engine import Engine
    from workers.engine.model_runner import ModelRunner
    from workers.engine.scheduler import Scheduler
    from workers.kernels.kv_cache import num_blocks_for_memory
    from workers.models.loader import load_model
    from workers.sampling.sampler import sample

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    model, model_config, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=device)
    dtype = next(model.parameters()).dtype
    memory = cfg.cache.kv_cache_memory_bytes or _memory_fraction(cfg.cache.kv_cache_memory_fraction, device)
    num_blocks = num_blocks_for_memory(model_config, cfg.cache.block_size, dtype, memory)
    max_len = min(cfg.scheduler.max_model_len, model_config.max_position_embeddings)
    sched_cfg = SchedulerConfig(max_num_seqs=cfg.scheduler.max_num_seqs,
                                max_num_batched_tokens=cfg.scheduler.max_num_batched_tokens,
                                max_model_len=max_len)
    if num_blocks * cfg.cache.block_size < max_len:
        raise SystemExit(f"KV cache of {memory} bytes holds {num_blocks} blocks of {cfg.cache.block_size} "
                         f"tokens, less than one full-length sequence ({max_len}); raise --kv-cache-memory")
    runtime = CacheRuntime(num_blocks=num_blocks, block_size=cfg.cache.block_size)
    runner = ModelRunner(model, model_config, runtime, dtype, device)
    block_manager = BlockManager(num_blocks, cfg.cache.block_size, cfg.cache.enable_prefix_caching)
    engine = Engine(Scheduler(sched_cfg, block_manager), runner, sample, tokenizer)
    log.info("model %s on %s: %d KV blocks of %d tokens (%.1f MB)", cfg.model, device, num_blocks,
             cfg.cache.block_size, memory / 1e6)
    return EngineLoop(engine), tokenizer, model_config, sched_cfg


def resolve_device(name: str) -> torch.device:
    """--device: 'auto' takes the GPU when torch sees one; an unusable device is a clear error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise SystemExit(f"--device {name!r}: {e}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name!r}: torch sees no CUDA device here (a CPU build, or no GPU)")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {name!r}: only cpu and cuda are supported")
    return device


def _memory_fraction(fraction: float, device: torch.device) -> int:
    """A share of the memory free now: the GPU's for cuda, the host's for cpu."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(pages * fraction)


async def serve(cfg: WorkerConfig) -> None:
    from workers.wire import ModelLimits

    loop, tokenizer, model_config, sched_cfg = build_engine(cfg)
    telemetry = WorkerTelemetry.create(loop, cfg.tracing)  # before start: the engine reports steps to it
    loop.start()
    worker_id = f"{socket.gethostname()}:{cfg.port}:{uuid.uuid4().hex[:6]}"
    limits = ModelLimits(max_model_len=sched_cfg.max_model_len, vocab_size=model_config.vocab_size,
                         eos_token_ids=model_config.eos_token_ids)
    servicer = WorkerServicer(loop, tokenizer, limits, model_name=cfg.model, block_size=cfg.cache.block_size,
                              max_num_seqs=sched_cfg.max_num_seqs, worker_id=worker_id, telemetry=telemetry)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_WorkerServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if bound == 0:
        raise SystemExit(f"cannot bind {cfg.host}:{cfg.port}")
    await server.start()
    if cfg.metrics_port:
        telemetry.serve_metrics(cfg.host, cfg.metrics_port)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
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
    await stop.wait()
    # Drain: report NOT_SERVING first so gateways stop sending, refuse new work, let running finish.
    if registration is not None:
        await registration.withdraw()  # registry gateways drop it now, not after the TTL
    servicer.is_draining = True
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    # The server still answers during the delay, so probes and gateways read NOT_SERVING (and
    # Generate gets UNAVAILABLE, which gateways retry elsewhere) instead of a refused connection.
    await asyncio.sleep(cfg.drain_delay_s)
    # No new RPCs from here; running streams finish, or are cancelled at the grace (their
    # sequences are aborted and their KV blocks freed by the servicer's finally).
    await server.stop(grace=cfg.drain_timeout_s)
    loop.stop()
    telemetry.shutdown()  # flushes the spans still queued


def _default_advertise(cfg: WorkerConfig) -> str:
    host = socket.gethostname() if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    return f"{host}:{cfg.port}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny", help="preset name (tiny, small), a local HF model directory, or sim:PRESET "
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
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--no-prefix-caching", action="store_true")
    p.add_argument("--num-threads", type=int, default=None)
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
    return WorkerConfig(
        model=a.model, host=a.host, port=a.port, dtype=a.dtype, device=a.device, num_threads=a.num_threads,
        scheduler=SchedulerConfig(max_num_seqs=a.max_num_seqs, max_num_batched_tokens=a.max_num_batched_tokens,
                                  max_model_len=a.max_model_len),
        cache=CacheConfig(block_size=a.block_size, kv_cache_memory_bytes=a.kv_cache_memory,
                          kv_cache_memory_fraction=a.kv_cache_fraction,
                          enable_prefix_caching=not a.no_prefix_caching),
        registry_url=a.registry_url, advertise=a.advertise, registry_ttl_s=a.registry_ttl,
        metrics_port=a.metrics_port, drain_delay_s=a.drain_delay, drain_timeout_s=a.drain_grace,
    )


def run(a: argparse.Namespace) -> int:
    from workers.parent_watch import die_with_parent

    die_with_parent()  # started by `laneway serve`: never outlive it
    logging.basicConfig(level=os.environ.get("LANEWAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config_from_args(a)))
    return 0
