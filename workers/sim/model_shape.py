"""What a model costs per pass: weight bytes read, KV bytes per token, FLOPs per token.

Dense models read every weight on every pass. A mixture-of-experts model always reads its
dense part (attention, embeddings, shared expert) and reads each routed expert only when
some token in the pass picked it (experts.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.sim.experts import unique_experts


@dataclass(frozen=True)
class MoeShape:
    num_experts: int  # routed experts per MoE layer
    experts_per_token: int
    expert_bytes: int  # one routed expert's weights, one layer
    num_moe_layers: int


@dataclass(frozen=True)
class ModelShape:
    name: str
    dense_weight_bytes: int  # read on every pass, whatever the batch
    kv_bytes_per_token: int  # K and V of one token, all layers
    active_params: int  # parameters one token multiplies through: 2 FLOPs each
    attention_flops_per_pair: int  # one query attending to one key, all layers and heads
    max_model_len: int
    moe: MoeShape | None = None

    @property
    def weight_bytes(self) -> int:
        """Every weight: what must fit in memory before any KV does."""
        if self.moe is None:
            return self.dense_weight_bytes
        m = self.moe
        return self.dense_weight_bytes + m.num_moe_layers * m.num_experts * m.expert_bytes

    def weight_bytes_read(self, num_tokens: int) -> float:
        """Weight bytes one pass computing `num_tokens` tokens streams from memory."""
        if self.moe is None or num_tokens == 0:
            return float(self.dense_weight_bytes)
        m = self.moe
        experts = unique_experts(m.num_experts, m.experts_per_token, num_tokens)
        return self.dense_weight_bytes + m.num_moe_layers * experts * m.expert_bytes


def llama_attention_flops_per_pair(num_layers: int, num_heads: int, head_dim: int) -> int:
    # Per layer and head: q.k (2*D FLOPs) and the weighted sum of v (2*D FLOPs).
    return 4 * num_layers * num_heads * head_dim


def gqa_kv_bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    return 2 * num_layers * num_kv_heads * head_dim * dtype_bytes
