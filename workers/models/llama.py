"""Llama-family decoder (Llama, Mistral, Qwen2) over a flattened token batch and a paged KV pool.

Module names mirror Hugging Face's (model.layers.N.self_attn...), except that q/k/v and
gate/up are fused; the loader maps the split checkpoint tensors onto the fused rows.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from workers.kernels.metadata import AttentionMetadata
from workers.kernels.packed_linear import PackedWeight, pack_weight, packed_linear
from workers.layers.attention import Attention
from workers.layers.linear import Linear
from workers.layers.mlp import SwiGLU
from workers.layers.norm import RMSNorm
from workers.layers.rotary import RotaryEmbedding
from workers.models.config import ModelConfig

log = logging.getLogger(__name__)

KVCache = tuple[torch.Tensor, torch.Tensor]  # (k_cache, v_cache), each (num_blocks, block_size, Hkv, D)


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dtype = getattr(torch, config.dtype)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size, dtype)

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
        kv_cache: KVCache, md: AttentionMetadata,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # (T, hidden) each
        """(this layer's MLP output, the residual stream before it): the residual add that
        ends a layer is left to the next layer's input norm (or the model's final norm),
        which does it in the same op. residual None: x is the embedding, nothing to add."""
        if residual is None:
            residual, h = x, self.input_layernorm(x)
        else:
            residual, h = self.input_layernorm.add_and_norm(x, residual)
        residual, h = self.post_attention_layernorm.add_and_norm(self.self_attn(h, cos, sin, kv_cache, md), residual)
        return self.mlp(h), residual


class LlamaModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dtype = getattr(torch, config.dtype)
        embeddings = torch.empty(config.vocab_size, config.hidden_size, dtype=dtype)  # set by init/loader
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, _weight=embeddings, _freeze=True)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)


class LlamaForCausalLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        # Tied checkpoints reuse the embedding matrix (compute_logits reads it directly).
        dtype = getattr(torch, config.dtype)
        self.lm_head = (
            None if config.tie_word_embeddings else Linear(config.hidden_size, config.vocab_size, False, dtype)
        )
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta, config.rope_scaling)
        self.tied_head_packed: PackedWeight | None = None  # the embedding matrix packed as a head

    def pack_weights(self) -> int:
        """Pre-pack every matmul weight for fast CPU inference (see kernels/packed_linear.py).

        Call once the weights are final; returns how many were packed (0 where packing does
        not apply, e.g. float32 or CUDA). Packed copies sit beside the plain weights: for
        bfloat16 on CPU the weights take twice their size in memory (AMX tiles, oneDNN's
        layout or AVX2 panels), or three times (a float32 copy, where no kernel built)."""
        linears = [m for m in self.modules() if isinstance(m, Linear)]
        for m in linears:
            m.pack()
        if self.lm_head is None:
            self.tied_head_packed = pack_weight(self.model.embed_tokens.weight)
        packed = [p for p in [*(m.packed for m in linears), self.tied_head_packed] if p is not None]
        if packed:
            log.info("matmul weights prepared for this CPU: %d as %s, %.0f MB beside the plain weights",
                     len(packed), ", ".join(sorted({p.kind for p in packed})),
                     sum(p.extra_bytes for p in packed) / 1e6)
        return len(packed)

    def forward(
        self,
        input_ids: torch.Tensor,  # (T,)
        positions: torch.Tensor,  # (T,)
        kv_caches: list[KVCache],  # one per layer
        md: AttentionMetadata,
    ) -> torch.Tensor:  # (T, hidden)
        assert len(kv_caches) == len(self.model.layers), (
            f"{len(kv_caches)} KV caches for {len(self.model.layers)} layers"
        )
        x = self.model.embed_tokens(input_ids)  # (T, hidden)
        cos, sin = self.rotary.lookup(positions, x.dtype)  # (T, 1, D) each, shared by all layers
        residual = None
        for layer, kv_cache in zip(self.model.layers, kv_caches):
            x, residual = layer(x, residual, cos, sin, kv_cache, md)
        return self.model.norm(x) if residual is None else self.model.norm.add_and_norm(x, residual)[1]

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:  # (N, hidden) -> (N, V) float32
        if self.lm_head is not None:
            return self.lm_head(hidden).float()
        if self.tied_head_packed is not None:
            return packed_linear(hidden, self.tied_head_packed, None).float()
        return torch.nn.functional.linear(hidden, self.model.embed_tokens.weight).float()


def build_model(config: ModelConfig, seed: int = 0, device: torch.device | str = "cpu") -> LlamaForCausalLM:
    """Seeded random weights: the same config and seed give identical weights on any machine.

    Normal(0, 0.02) matrices (residual-out projections scaled down by depth, as GPT-2 does,
    so the residual stream stays O(1)), ones for norms, small normal biases.
    """
    model = empty_model(config, device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    residual_std = 0.02 / (2 * config.num_layers) ** 0.5
    with torch.no_grad():
        for name, param in model.named_parameters():  # registration order: deterministic
            if name.endswith("norm.weight"):
                values = torch.ones(param.shape)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                values = torch.randn(param.shape, generator=generator) * residual_std
            else:
                values = torch.randn(param.shape, generator=generator) * 0.02
            param.copy_(values)
    return model.eval()


def empty_model(config: ModelConfig, device: torch.device | str = "cpu") -> LlamaForCausalLM:
    """Allocated in config.dtype on `device`, uninitialised: the caller fills every parameter."""
    with torch.device(device):  # every layer allocates with torch.empty, so nothing is initialised twice
        model = LlamaForCausalLM(config)
    return model.eval()
