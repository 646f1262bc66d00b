"""The paged-attention interface every layer calls, for mixed prefill/decode batches.

Two operations over the paged KV pool (per layer: k_cache, v_cache, each
(num_blocks, block_size, Hkv, D)):
- `write_kv` stores this step's new K/V at their slots (block_id * block_size + offset);
- `paged_attention` is causal attention where query token i of sequence b sits at
  position seq_len[b] - q_len[b] + i and sees context positions <= its own, read from the
  pool through block_tables.
The backend is chosen per device: plain torch on CPU, the Triton kernel on CUDA.
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch

from workers.kernels.metadata import AttentionMetadata
from workers.kernels.torch_paged_attention import torch_paged_attention


class AttentionBackend(Protocol):
    def __call__(
        self,
        q: torch.Tensor,  # (T, Hq, D)
        k_cache: torch.Tensor,  # (num_blocks, block_size, Hkv, D)
        v_cache: torch.Tensor,
        md: AttentionMetadata,
        scale: float,
    ) -> torch.Tensor: ...  # (T, Hq, D)


def write_kv(
    k: torch.Tensor,  # (T, Hkv, D)
    v: torch.Tensor,
    k_cache: torch.Tensor,  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,  # (T,) int64
) -> None:
    num_kv_heads, head_dim = k_cache.shape[2:]
    # The pool is contiguous, so a flat slot view is free and the scatter is one op per tensor.
    k_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slot_mapping, k)  # (num_slots, Hkv, D)
    v_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slot_mapping, v)


@functools.cache
def select_attention_backend(device: torch.device | str) -> AttentionBackend:
    device = torch.device(device)
    if device.type == "cuda":
        # Lazy: the Triton kernel (and triton itself) only exist on GPU machines.
        from workers.kernels.triton_paged_attention import triton_paged_attention

        return triton_paged_attention
    return torch_paged_attention


def paged_attention(
    q: torch.Tensor,  # (T, Hq, D)
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    md: AttentionMetadata,
    scale: float,
) -> torch.Tensor:  # (T, Hq, D)
    return select_attention_backend(q.device.type)(q, k_cache, v_cache, md, scale)
