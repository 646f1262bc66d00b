"""A linear layer whose weights are allocated, never initialised.

Every weight is written afterwards, by the loader or by seeded init, so running
nn.Linear's kaiming init first would only burn start-up time (seconds for big models).
Once the weights are final, `pack()` may give the matmul a pre-packed copy (see
workers/kernels/packed_linear.py); until then, and wherever packing does not apply,
forward is F.linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.kernels.packed_linear import PackedWeight, pack_weight, packed_linear


class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype), requires_grad=False) if bias else None
        # A snapshot of `weight`: writing the weight after pack() needs another pack().
        self.packed: PackedWeight | None = None

    def pack(self) -> bool:
        """Pre-pack the weight for this device and dtype if that helps; True if packed."""
        self.packed = pack_weight(self.weight)
        return self.packed is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, in) -> (T, out)
        if self.packed is not None:
            return packed_linear(x, self.packed, self.bias)
        return F.linear(x, self.weight, self.bias)
