"""Rotary position embedding (rotate-half layout), with optional Llama 3.1 frequency scaling.

Positions come per token: a flattened batch mixes sequences at different positions.
The model computes cos/sin once per step and every layer applies them.
"""

from __future__ import annotations

import math

import torch

from workers.kernels.cpu_extension import has_bf16_cpu_kernel_for
from workers.models.config import RopeScaling


def inverse_frequencies(head_dim: int, theta: float, scaling: RopeScaling | None) -> torch.Tensor:
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim  # (D/2,)
    inv_freq = 1.0 / theta**exponents
    if scaling is None:
        return inv_freq
    old_len = scaling.original_max_position_embeddings
    low_freq_wavelen = old_len / scaling.low_freq_factor
    high_freq_wavelen = old_len / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    # Long wavelengths (beyond the original context) are slowed by `factor`, short ones kept,
    # and the band between interpolates smoothly between the two.
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


class RotaryEmbedding:
    """Angles computed per step from the positions: T x D/2 products, cheaper than keeping a
    table of max_position_embeddings rows per device and dtype."""

    def __init__(self, head_dim: int, theta: float, scaling: RopeScaling | None) -> None:
        self._inv_freq_cpu = inverse_frequencies(head_dim, theta, scaling)  # (D/2,) float32
        self._inv_freq: dict[torch.device, torch.Tensor] = {}

    def lookup(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(T,) positions -> cos, sin, each (T, 1, D) in `dtype`, ready to broadcast over heads."""
        inv_freq = self._inv_freq.get(positions.device)
        if inv_freq is None:
            inv_freq = self._inv_freq[positions.device] = self._inv_freq_cpu.to(positions.device)
        freqs = positions.float()[:, None] * inv_freq[None, :]  # (T, D/2), float32 like the reference
        angles = torch.cat([freqs, freqs], dim=-1).unsqueeze(1)  # (T, 1, D)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (T, H, D) rotated by its token's angles; cos/sin (T, 1, D)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (T, H, D)
    return x * cos + rotated * sin


def apply_rotary_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary` written into x (its old values are gone), which it returns. bfloat16 on
    the CPU is one op (csrc/rotary.cpp) where torch dispatches about ten, bitwise the same."""
    if has_bf16_cpu_kernel_for(x):
        torch.ops.laneway.rotary_embedding_(x, cos, sin)
        return x
    return x.copy_(apply_rotary(x, cos, sin))
