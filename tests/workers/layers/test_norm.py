"""RMSNorm is the reference formula in every dtype we serve: bitwise through torch
(float32, float16), and through Laneway's bfloat16 kernel (csrc/rms_norm.cpp) up to the
order of the sum of squares, which may move a rare element by a bfloat16 step or two."""

from __future__ import annotations

import pytest
import torch

from workers.kernels.cpu_extension import load_cpu_extension
from workers.layers.norm import RMSNorm

needs_kernels = pytest.mark.skipif(not load_cpu_extension(), reason="CPU kernels did not build here")


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()  # as transformers' LlamaRMSNorm writes it
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _norm_and_input(dtype: torch.dtype, rows: int, hidden: int) -> tuple[RMSNorm, torch.Tensor]:
    gen = torch.Generator().manual_seed(rows * hidden)
    norm = RMSNorm(hidden, 1e-5, dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(hidden, generator=gen))
    return norm, (torch.randn(rows, hidden, generator=gen) * 3).to(dtype)


def _within_one_step(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal but for a few elements (under 0.1%), each within two bfloat16 steps (a step in the
    normalized value may round the product with the weight a step further)."""
    differ = got != want
    assert differ.float().mean() < 1e-3, f"{int(differ.sum())} of {differ.numel()} differ"
    torch.testing.assert_close(got, want, rtol=2**-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("rows", "hidden"), [(1, 64), (3, 768), (64, 768), (17, 4096)])
def test_equal_to_reference(dtype, rows, hidden):
    norm, x = _norm_and_input(dtype, rows, hidden)
    want = reference_rms_norm(x, norm.weight, 1e-5)
    if dtype == torch.bfloat16 and load_cpu_extension():
        _within_one_step(norm(x), want)
    else:
        assert torch.equal(norm(x), want)


@needs_kernels
@pytest.mark.parametrize(("rows", "hidden"), [(1, 768), (7, 768), (300, 768), (2, 4096)])
def test_add_and_norm_is_the_bfloat16_add_then_the_norm(rows, hidden):
    norm, x = _norm_and_input(torch.bfloat16, rows, hidden)
    residual = (torch.randn(rows, hidden, generator=torch.Generator().manual_seed(7)) * 3).to(torch.bfloat16)
    total, normed = norm.add_and_norm(x, residual)
    assert torch.equal(total, x + residual), "the residual stream is the bfloat16 sum, rounded once"
    assert torch.equal(normed, norm(x + residual))
    _within_one_step(normed, reference_rms_norm(x + residual, norm.weight, 1e-5))


@needs_kernels
def test_the_kernel_refuses_what_it_does_not_serve():
    w = torch.ones(8, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="bfloat16 x and weight"):
        torch.ops.laneway.rms_norm(torch.zeros(2, 8), w, 1e-5)
    with pytest.raises(RuntimeError, match=r"x \(T, D\), weight \(D\)"):
        torch.ops.laneway.rms_norm(torch.zeros(2, 4, dtype=torch.bfloat16), w, 1e-5)
    with pytest.raises(RuntimeError, match="residual like x"):
        torch.ops.laneway.add_rms_norm(torch.zeros(2, 8, dtype=torch.bfloat16), torch.zeros(1, 8, dtype=torch.bfloat16),
                                       w, 1e-5)
