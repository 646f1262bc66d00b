"""Self-attention over the paged KV pool: project, rotate, write K/V, attend, project back."""

from __future__ import annotations

import torch
from torch import nn

from workers.kernels.attention import paged_attention, write_kv
from workers.kernels.metadata import AttentionMetadata
from workers.layers.linear import Linear
from workers.layers.rotary import apply_rotary_
from workers.models.config import ModelConfig


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        self.q_size, self.kv_size = config.q_size, config.kv_size
        self.scale = config.head_dim**-0.5
        dtype = getattr(torch, config.dtype)
        # q, k, v fused into one matmul (rows: [q; k; v]); Qwen2 has biases on all three.
        self.qkv_proj = Linear(config.hidden_size, self.q_size + 2 * self.kv_size, config.attention_bias, dtype)
        self.o_proj = Linear(self.q_size, config.hidden_size, False, dtype)

    def forward(
        self,
        x: torch.Tensor,  # (T, hidden)
        cos: torch.Tensor,  # (T, 1, D)
        sin: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor],  # each (num_blocks, block_size, Hkv, D)
        md: AttentionMetadata,
    ) -> torch.Tensor:  # (T, hidden)
        num_tokens = x.shape[0]
        qk, v = self.qkv_proj(x).split([self.q_size + self.kv_size, self.kv_size], dim=-1)
        # q and k rotate together, in place in the projection's output (nothing else reads it).
        qk = apply_rotary_(qk.view(num_tokens, self.num_heads + self.num_kv_heads, self.head_dim), cos, sin)
        q, k = qk.split([self.num_heads, self.num_kv_heads], dim=1)  # (T, Hq, D), (T, Hkv, D)
        v = v.view(num_tokens, self.num_kv_heads, self.head_dim)  # (T, Hkv, D)
        k_cache, v_cache = kv_cache
        write_kv(k, v, k_cache, v_cache, md.slot_mapping)
        out = paged_attention(q, k_cache, v_cache, md, self.scale)  # (T, Hq, D)
        return self.o_proj(out.reshape(num_tokens, self.q_size))  # (T, hidden)
