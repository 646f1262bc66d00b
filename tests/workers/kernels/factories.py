"""Random paged-attention batches: a pool, block tables that scatter each sequence, metadata."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from workers.kernels.metadata import AttentionMetadata


@dataclass
class PagedBatch:
    q: torch.Tensor  # (T, Hq, D)
    k_cache: torch.Tensor  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor
    md: AttentionMetadata


def make_paged_batch(
    q_lens: list[int],
    seq_lens: list[int],
    block_size: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    spare_blocks: int = 3,
) -> PagedBatch:
    """Every sequence gets random, non-contiguous blocks; the rest of the pool holds noise."""
    assert all(0 < q <= s for q, s in zip(q_lens, seq_lens)), "each seq needs 0 < q_len <= seq_len"
    gen = torch.Generator().manual_seed(seed)
    blocks_per_seq = [-(-s // block_size) for s in seq_lens]
    num_blocks = sum(blocks_per_seq) + spare_blocks
    order = torch.randperm(num_blocks, generator=gen).tolist()
    tables, used = [], 0
    for n in blocks_per_seq:
        tables.append(order[used : used + n])
        used += n
    width = max(blocks_per_seq)
    block_tables = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int32)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype)

    num_tokens = sum(q_lens)
    slots = []
    for table, q_len, seq_len in zip(tables, q_lens, seq_lens):
        for pos in range(seq_len - q_len, seq_len):
            slots.append(table[pos // block_size] * block_size + pos % block_size)
    md = AttentionMetadata(
        slot_mapping=torch.tensor(slots, dtype=torch.int64),
        query_start_loc=torch.tensor(list(itertools.accumulate(q_lens, initial=0)), dtype=torch.int32),
        seq_lens=torch.tensor(seq_lens, dtype=torch.int32),
        block_tables=block_tables,
        query_lens_list=tuple(q_lens),
        seq_lens_list=tuple(seq_lens),
        block_size=block_size,
    )
    return PagedBatch(
        q=randn(num_tokens, num_heads, head_dim),
        k_cache=randn(num_blocks, block_size, num_kv_heads, head_dim),
        v_cache=randn(num_blocks, block_size, num_kv_heads, head_dim),
        md=md,
    )
