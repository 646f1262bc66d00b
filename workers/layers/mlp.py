"""SwiGLU feed-forward with gate and up projections fused into one matmul."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.kernels.cpu_extension import has_bf16_cpu_kernel_for
from workers.layers.linear import Linear


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.gate_up_proj = Linear(hidden_size, 2 * intermediate_size, bias=False, dtype=dtype)  # rows: [gate; up]
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, D) -> (T, D)
        return self.down_proj(silu_mul(self.gate_up_proj(x)))


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """(T, 2I) -> silu(gate) * up, (T, I). bfloat16 on the CPU is one op (csrc/silu_mul.cpp)
    where torch dispatches three; its exp may put a rare element one bfloat16 step away."""
    if gate_up.dim() == 2 and has_bf16_cpu_kernel_for(gate_up):
        return torch.ops.laneway.silu_mul(gate_up)
    gate, up = gate_up.chunk(2, dim=-1)  # (T, I) each
    return F.silu(gate) * up
