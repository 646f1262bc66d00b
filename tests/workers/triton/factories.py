"""Random mixed batches over a shuffled paged KV pool, for attention kernel tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from workers.kernels.metadata import AttentionMetadata


@dataclass(frozen=True)
class Batch:
    q: torch.Tensor  # (T, Hq, D)
    k_cache: torch.Tensor  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor
    md: AttentionMetadata


def make_batch(
    seqs: list[tuple[int, int]],  # (q_len, seq_len) per sequence
    block_size: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Batch:
    """Each sequence owns ceil(seq_len / block_size) blocks drawn from a shuffled pool with
    spare blocks, so block tables are neither contiguous nor ordered. The whole pool holds
    random values, positions past seq_len included: only masking keeps them out."""
    assert all(0 <= q <= s for q, s in seqs), f"need 0 <= q_len <= seq_len, got {seqs}"
    gen = torch.Generator().manual_seed(seed)
    blocks_per_seq = [-(-s // block_size) for _, s in seqs]
    num_blocks = sum(blocks_per_seq) + 3  # spare blocks nobody owns
    order = torch.randperm(num_blocks, generator=gen).tolist()
    width = max(blocks_per_seq)
    table = torch.zeros(len(seqs), width, dtype=torch.int32)  # padding entries point at block 0
    taken = 0
    for b, n in enumerate(blocks_per_seq):
        table[b, :n] = torch.tensor(order[taken : taken + n], dtype=torch.int32)
        taken += n

    cache_shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.randn(cache_shape, generator=gen).to(dtype)
    v_cache = torch.randn(cache_shape, generator=gen).to(dtype)
    num_tokens = sum(q for q, _ in seqs)
    q = torch.randn(num_tokens, num_heads, head_dim, generator=gen).to(dtype)

    slots = [
        int(table[b, p // block_size]) * block_size + p % block_size
        for b, (q_len, s) in enumerate(seqs)
        for p in range(s - q_len, s)
    ]
    starts = list(itertools.accumulate((q for q, _ in seqs), initial=0))
    md = AttentionMetadata(
        slot_mapping=torch.tensor(slots, dtype=torch.int64, device=device),
        query_start_loc=torch.tensor(starts, dtype=torch.int32, device=device),
        seq_lens=torch.tensor([s for _, s in seqs], dtype=torch.int32, device=device),
        block_tables=table.to(device),
        query_lens_list=tuple(q for q, _ in seqs),
        seq_lens_list=tuple(s for _, s in seqs),
        block_size=block_size,
    )
    return Batch(q.to(device), k_cache.to(device), v_cache.to(device), md)


def visible_slots(md: AttentionMetadata) -> torch.Tensor:
    """(n,) int64 flat pool slots (block_id * block_size + offset) that some query may attend to."""
    table = md.block_tables.cpu()
    slots = [
        int(table[b, p // md.block_size]) * md.block_size + p % md.block_size
        for b, s in enumerate(md.seq_lens_list)
        for p in range(s)
    ]
    return torch.tensor(sorted(set(slots)), dtype=torch.int64)
