"""RMSNorm's fused kernel is bitwise the reference formula, in every dtype we serve."""

from __future__ import annotations

import pytest
import torch

from workers.layers.norm import RMSNorm


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()  # as transformers' LlamaRMSNorm writes it
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("rows", "hidden"), [(1, 64), (3, 768), (64, 768), (17, 4096)])
def test_bitwise_equal_to_reference(dtype, rows, hidden):
    gen = torch.Generator().manual_seed(rows * hidden)
    norm = RMSNorm(hidden, 1e-5, dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(hidden, generator=gen))
    x = (torch.randn(rows, hidden, generator=gen) * 3).to(dtype)
    assert torch.equal(norm(x), reference_rms_norm(x, norm.weight, 1e-5))
