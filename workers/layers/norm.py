"""RMSNorm, computed in float32 whatever the model dtype (as the reference Llama does)."""

from __future__ import annotations

import torch
from torch import nn

from workers.kernels.cpu_extension import has_bf16_cpu_kernel_for


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size, dtype=dtype), requires_grad=False)  # set by init/loader
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, D) -> (T, D)
        if self._fused(x):
            return torch.ops.laneway.rms_norm(x, self.weight, self.eps)
        # torch.rms_norm gives bitwise what the reference's pow / mean / rsqrt / mul spell
        # out (checked in tests), with one Python-level call instead of five.
        normed = torch.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * normed.to(x.dtype)

    def add_and_norm(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x + residual, this norm of it): the residual stream and the next sublayer's input."""
        if self._fused(x):
            return torch.ops.laneway.add_rms_norm(x, residual, self.weight, self.eps)
        x = x + residual
        return x, self(x)

    def _fused(self, x: torch.Tensor) -> bool:
        """bfloat16 on the CPU goes through Laneway's kernel (csrc/rms_norm.cpp): one op where
        torch dispatches six, with the same roundings."""
        return x.dim() == 2 and has_bf16_cpu_kernel_for(x)
