"""SwiGLU's activation (layers/mlp.py `silu_mul`): torch's silu(gate) * up, through
Laneway's bfloat16 kernel (csrc/silu_mul.cpp) up to its exp, which may move a rare element
by one bfloat16 step, and bitwise through torch for the other dtypes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workers.kernels.cpu_extension import load_cpu_extension
from workers.layers.mlp import silu_mul

needs_kernels = pytest.mark.skipif(not load_cpu_extension(), reason="CPU kernels did not build here")


def _reference(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize(("rows", "intermediate"), [(1, 3072), (5, 40), (64, 3), (2, 16)])  # with and without tails
def test_silu_mul_is_torchs(dtype, rows, intermediate):
    gen = torch.Generator().manual_seed(rows * intermediate)
    gate_up = (torch.randn(rows, 2 * intermediate, generator=gen) * 4).to(dtype)
    got, want = silu_mul(gate_up), _reference(gate_up)
    assert got.shape == want.shape == (rows, intermediate) and got.dtype == dtype
    if dtype == torch.bfloat16 and load_cpu_extension():
        differ = got != want
        assert differ.float().mean() < 1e-3, f"{int(differ.sum())} of {differ.numel()} differ"
        torch.testing.assert_close(got, want, rtol=2**-7, atol=0)  # one bfloat16 step at most
    else:
        assert torch.equal(got, want)


@needs_kernels
def test_kernel_keeps_the_edges_of_silu():
    values = torch.tensor([0.0, -0.0, 1e-30, -100.0, 100.0, 88.0, -88.0, 1e30, -1e30,
                           float("inf"), float("-inf"), float("nan")])
    gate_up = torch.cat([values, torch.ones_like(values)]).to(torch.bfloat16)[None, :]
    got = torch.ops.laneway.silu_mul(gate_up)[0].float()
    want = _reference(gate_up)[0].float()
    # zeros, tiny, saturated both ways (silu(-100) is -0: exp overflows to inf), inf, NaN
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(got.signbit()[:-2], want.signbit()[:-2])  # -0 where torch has -0 (a NaN's sign aside)
    assert got[-3] == float("inf") and torch.isnan(got[-1])


@needs_kernels
def test_kernel_refuses_what_it_does_not_serve():
    with pytest.raises(RuntimeError, match="bfloat16"):
        torch.ops.laneway.silu_mul(torch.zeros(2, 8))
    with pytest.raises(RuntimeError, match=r"\(T, 2I\)"):
        torch.ops.laneway.silu_mul(torch.zeros(2, 7, dtype=torch.bfloat16))
