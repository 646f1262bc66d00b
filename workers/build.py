"""Build a worker's engine from its WorkerConfig: model, KV pool, block manager, scheduler.

Shared by the process entry point (workers/main.py), `laneway calibrate --measure`
(workers/sim/measure.py) and tests, none of which should need the others to build one.
torch is imported only when a real model is built; a SIMULATED worker never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from workers.built_engine import BuiltEngine
from workers.config import WorkerConfig, is_sim_model
from workers.context_length import log_context_length, resolve_max_model_len
from workers.engine.config import CacheRuntime, SchedulerConfig
from workers.engine.engine_loop import EngineLoop

if TYPE_CHECKING:
    import torch

log = logging.getLogger("laneway.worker")


def build_engine_on_its_thread(cfg: WorkerConfig) -> BuiltEngine:
    """`build_engine` on a new thread that then runs the engine loop (once the caller starts
    it): the model is packed, warmed up and stepped by one thread, so torch's OpenMP threads
    form one team (why that matters: workers/engine/engine_loop.py). Blocks until built; a
    failure to build (SystemExit included) is raised here, on the caller's thread."""
    handoff: queue.SimpleQueue[BuiltEngine | BaseException] = queue.SimpleQueue()

    def build_then_run() -> None:
        try:
            built = build_engine(cfg)
            built.loop.bind_to_current_thread()
        except BaseException as exc:  # noqa: BLE001 - every failure is the caller's to raise
            handoff.put(exc)
            return
        handoff.put(built)
        built.loop.run_bound()

    threading.Thread(target=build_then_run, name="engine-loop", daemon=True).start()
    got = handoff.get()
    if isinstance(got, BaseException):
        raise got
    return got


def build_engine(cfg: WorkerConfig) -> BuiltEngine:
    """Load the model (or a SIMULATED preset, for `sim:` models) and size the KV pool.

    Returns the engine loop (not started), the model's tokenizer, its ModelConfig and the
    SchedulerConfig actually in force (cfg.scheduler with max_model_len decided: auto, or
    the flag's, within the model's context and the KV pool). A KV pool too small for one
    full-length sequence is a SystemExit naming the flag to raise."""
    if is_sim_model(cfg.model):  # SIMULATED: cost-model forward passes, same engine (workers/sim)
        from workers.sim.build import build_sim_engine

        return build_sim_engine(cfg)
    import torch

    from workers.engine.block_manager import BlockManager
    from workers.engine.engine import Engine
    from workers.engine.model_runner import ModelRunner
    from workers.engine.scheduler import Scheduler
    from workers.engine.warmup import start_step_cost
    from workers.kernels.kv_cache import num_blocks_for_memory
    from workers.models.loader import load_model
    from workers.sampling.logprobs import prompt_logprobs
    from workers.sampling.sampler import sample

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    model, model_config, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=device)
    dtype = next(model.parameters()).dtype
    memory = cfg.cache.kv_cache_memory_bytes or _memory_fraction(cfg.cache.kv_cache_memory_fraction, device)
    num_blocks = num_blocks_for_memory(model_config, cfg.cache.block_size, dtype, memory)
    context = resolve_max_model_len(cfg.scheduler.max_model_len, model_config.max_position_embeddings,
                                    num_blocks * cfg.cache.block_size)
    log_context_length(context)
    sched_cfg = SchedulerConfig(max_num_seqs=cfg.scheduler.max_num_seqs,
                                max_num_batched_tokens=cfg.scheduler.max_num_batched_tokens,
                                max_model_len=context.max_model_len)
    runtime = CacheRuntime(num_blocks=num_blocks, block_size=cfg.cache.block_size)
    with _start_up_step("building the model runner (KV pool, decode kernel)", device):
        runner = ModelRunner(model, model_config, runtime, dtype, device)
    block_manager = BlockManager(num_blocks, cfg.cache.block_size, cfg.cache.enable_prefix_caching)
    engine = Engine(Scheduler(sched_cfg, block_manager), runner, sample, tokenizer, prompt_logprobs)
    log.info("model %s on %s: %d KV blocks of %d tokens (%.1f MB)", cfg.model, device, num_blocks,
             cfg.cache.block_size, memory / 1e6)
    # Before SERVING: every kind of pass runs once here, and the step planner gets its model.
    with _start_up_step("the warm-up (one pass of every kind before serving)", device):
        start_step_cost(engine, model_config.vocab_size, cfg.step_cost)
    return BuiltEngine(EngineLoop(engine), tokenizer, model_config, sched_cfg)


@contextlib.contextmanager
def _start_up_step(what: str, device: torch.device) -> Iterator[None]:
    """A kernel build, Triton/compiler or out-of-memory error here is a start-up failure: the
    process exits non-zero with a message naming the step, before it ever reports SERVING."""
    try:
        yield
    except SystemExit:
        raise
    except Exception as exc:
        log.exception("start-up failed in %s", what)
        raise SystemExit(f"laneway worker: start-up failed in {what} on {device}: "
                         f"{exc.__class__.__name__}: {exc}") from exc


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
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise SystemExit(f"--device {name!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
        # The current device is what a bare "cuda" means to torch and where Triton launches
        # its kernels: it must be the one this worker serves on, not device 0.
        torch.cuda.set_device(device)
    return device


def _memory_fraction(fraction: float, device: torch.device) -> int:
    """A share of the memory free now: the GPU's for cuda, the host's for cpu."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(pages * fraction)
