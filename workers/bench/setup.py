"""The engine under test: the real scheduler, model runner and sampler around one model.

Built like `workers.build.build_engine`, but around an already-loaded model, so every
benchmark in a run shares the same weights and each gets a fresh KV pool.
"""

from __future__ import annotations

import torch

from workers.engine.block_manager import BlockManager
from workers.engine.config import CacheRuntime, SchedulerConfig
from workers.engine.engine import Engine
from workers.engine.model_runner import ModelRunner
from workers.engine.scheduler import Scheduler
from workers.engine.tokenizer import Tokenizer
from workers.kernels.kv_cache import block_bytes
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM
from workers.sampling.sampler import sample

BLOCK_SIZE = 16


def make_engine(model: LlamaForCausalLM, config: ModelConfig, tokenizer: Tokenizer, *, num_tokens: int,
                max_num_seqs: int, max_num_batched_tokens: int = 512, max_model_len: int = 2048) -> Engine:
    """An engine whose KV pool holds `num_tokens` tokens (rounded up to whole blocks).

    Prefix caching is off: benchmark prompts are random, and a hit would skip the work
    being measured."""
    dtype = next(model.parameters()).dtype
    num_blocks = -(-num_tokens // BLOCK_SIZE)
    runtime = CacheRuntime(num_blocks=num_blocks, block_size=BLOCK_SIZE)
    runner = ModelRunner(model, config, runtime, dtype, next(model.parameters()).device)
    scheduler = Scheduler(
        SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                        max_model_len=min(max_model_len, config.max_position_embeddings)),
        BlockManager(num_blocks, BLOCK_SIZE, enable_prefix_caching=False),
    )
    return Engine(scheduler, runner, sample, tokenizer)


def weight_bytes(model: LlamaForCausalLM) -> int:
    """Bytes of every parameter: what one forward pass streams from memory at least once."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes_per_token(config: ModelConfig, dtype: torch.dtype) -> int:
    """K and V of one token over all layers: what decode attention reads per context token."""
    return block_bytes(config, 1, dtype)
