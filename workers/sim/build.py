"""`laneway worker --model sim:PRESET`: the real engine around a simulated forward pass.

Same Scheduler, BlockManager, Engine, EngineLoop and gRPC service as `build_engine`
(workers/build.py, which hands `sim:` models here); only the ModelRunner is swapped for
SimRunner and the KV pool is sized from the preset's free memory (or --kv-cache-memory),
so the KV cliff is where the preset's hardware puts it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from workers.built_engine import BuiltEngine
from workers.config import SIM_PREFIX
from workers.context_length import log_context_length, resolve_max_model_len
from workers.engine.block_manager import BlockManager
from workers.engine.engine import Engine
from workers.engine.engine_loop import EngineLoop
from workers.engine.scheduler import Scheduler
from workers.models.config import PRESETS as MODEL_PRESETS
from workers.sim.presets import get_preset
from workers.sim.sim_runner import SimRunner
from workers.tokenizer.byte import ByteTokenizer

if TYPE_CHECKING:
    from workers.config import WorkerConfig

log = logging.getLogger("laneway.worker")


def build_sim_engine(cfg: WorkerConfig) -> BuiltEngine:
    from workers.sampling.sampler import sample

    preset = get_preset(cfg.model[len(SIM_PREFIX):])
    block_size = cfg.cache.block_size
    num_blocks = preset.num_kv_blocks(block_size, cfg.cache.kv_cache_memory_bytes)
    context = resolve_max_model_len(cfg.scheduler.max_model_len, preset.max_model_len, num_blocks * block_size)
    log_context_length(context)
    max_len = context.max_model_len
    sched_cfg = replace(cfg.scheduler, max_model_len=max_len)
    # Byte-level tokens as the built-in presets use: the ids mean nothing, the counts do.
    model_config = replace(MODEL_PRESETS["tiny"], max_position_embeddings=max_len, name=cfg.model)
    tokenizer = ByteTokenizer(model_config.vocab_size)
    runner = SimRunner(preset.cost, model_config.vocab_size)
    block_manager = BlockManager(num_blocks, block_size, cfg.cache.enable_prefix_caching)
    engine = Engine(Scheduler(sched_cfg, block_manager), runner, sample, tokenizer)
    log.warning("SIMULATED worker %s (%s): forward passes are sleeps from %s; %d KV blocks of %d tokens "
                "(%.1f GB of K/V at %d bytes/token); tokens are meaningless", cfg.model, preset.description,
                preset.cost.describe(), num_blocks, block_size,
                num_blocks * block_size * preset.kv_bytes_per_token / 1e9, preset.kv_bytes_per_token)
    return BuiltEngine(EngineLoop(engine), tokenizer, model_config, sched_cfg)
