from __future__ import annotations

import torch

from workers.kernels.kv_cache import allocate_kv_cache, block_bytes, num_blocks_for_memory
from workers.models.config import ModelConfig


def test_allocate_shapes_and_zero_fill():
    config = ModelConfig.preset("tiny")
    caches = allocate_kv_cache(config, num_blocks=5, block_size=4, dtype=torch.bfloat16, device="cpu")
    assert len(caches) == config.num_layers
    for k, v in caches:
        assert k.shape == v.shape == (5, 4, config.num_kv_heads, config.head_dim)
        assert k.dtype == torch.bfloat16 and not k.any() and not v.any()
        assert k.data_ptr() != v.data_ptr()


def test_num_blocks_for_memory():
    config = ModelConfig.preset("small")  # 12 layers, 4 kv heads, head_dim 64
    per_block = 2 * 12 * 16 * 4 * 64 * 2
    assert block_bytes(config, 16, torch.bfloat16) == per_block
    assert num_blocks_for_memory(config, 16, torch.bfloat16, 10 * per_block + per_block - 1) == 10
    assert num_blocks_for_memory(config, 16, torch.float32, 10 * per_block) == 5
