"""The paged KV pool: allocation and how many blocks a memory budget buys."""

from __future__ import annotations

import torch

from workers.models.config import ModelConfig


def block_bytes(config: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    """K and V, every layer, one block."""
    elem_size = torch.empty((), dtype=dtype).element_size()
    return 2 * config.num_layers * block_size * config.num_kv_heads * config.head_dim * elem_size


def num_blocks_for_memory(config: ModelConfig, block_size: int, dtype: torch.dtype, memory_bytes: int) -> int:
    return memory_bytes // block_bytes(config, block_size, dtype)


def allocate_kv_cache(
    config: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device | str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One (k_cache, v_cache) pair per layer, each (num_blocks, block_size, Hkv, D).

    Zero-filled, not empty: attention reads padded table entries and masks them, which is
    only exact while every value in the pool is finite.
    """
    assert num_blocks > 0, f"KV pool needs at least one block, got {num_blocks}"
    shape = (num_blocks, block_size, config.num_kv_heads, config.head_dim)
    return [
        (torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))
        for _ in range(config.num_layers)
    ]
