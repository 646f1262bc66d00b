"""Slow, obviously correct paged attention: loops over tokens and heads, float64 softmax.

Used only by tests, as the one reference every fast path (torch, Triton) is checked against.
"""

from __future__ import annotations

import torch

from workers.kernels.metadata import AttentionMetadata


def reference_paged_attention(
    q: torch.Tensor,  # (T, Hq, D)
    k_cache: torch.Tensor,  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor,
    md: AttentionMetadata,
    scale: float,
) -> torch.Tensor:  # (T, Hq, D)
    num_heads, num_kv_heads = q.shape[1], k_cache.shape[2]
    group = num_heads // num_kv_heads
    block_tables = md.block_tables.tolist()
    out = torch.zeros(q.shape, dtype=torch.float64)
    token = 0
    for b, (q_len, seq_len) in enumerate(zip(md.query_lens_list, md.seq_lens_list)):
        for i in range(q_len):
            pos = seq_len - q_len + i  # the query token's own position; it sees [0, pos]
            for h in range(num_heads):
                kv_head = h // group
                keys, values = [], []
                for p in range(pos + 1):
                    block = block_tables[b][p // md.block_size]
                    keys.append(k_cache[block, p % md.block_size, kv_head].double())
                    values.append(v_cache[block, p % md.block_size, kv_head].double())
                scores = torch.stack(keys) @ q[token, h].double() * scale  # (pos + 1,)
                probs = torch.softmax(scores, dim=0)
                out[token, h] = probs @ torch.stack(values)
            token += 1
    return out.to(q.dtype)


def reference_write_kv(
    k: torch.Tensor,  # (T, Hkv, D)
    v: torch.Tensor,
    k_cache: torch.Tensor,  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,  # (T,)
) -> None:
    block_size = k_cache.shape[1]
    for t, slot in enumerate(slot_mapping.tolist()):
        k_cache[slot // block_size, slot % block_size] = k[t]
        v_cache[slot // block_size, slot % block_size] = v[t]
