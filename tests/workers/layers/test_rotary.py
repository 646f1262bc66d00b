"""Rotary embedding in place (layers/rotary.py `apply_rotary_`): bitwise the reference's
ops, through Laneway's bfloat16 kernel (csrc/rotary.cpp) and through torch for the rest."""

from __future__ import annotations

import pytest
import torch

from workers.kernels.cpu_extension import load_cpu_extension
from workers.layers.rotary import RotaryEmbedding, apply_rotary, apply_rotary_

needs_kernels = pytest.mark.skipif(not load_cpu_extension(), reason="CPU kernels did not build here")


def _qkv_and_angles(dtype: torch.dtype, tokens: int, heads: int, kv_heads: int, head_dim: int):
    """A projection output (T, (H + 2 Hkv) * D) as the attention layer has it, and the
    angles of positions spread over a long context."""
    gen = torch.Generator().manual_seed(tokens * 31 + head_dim)
    qkv = (torch.randn(tokens, (heads + 2 * kv_heads) * head_dim, generator=gen) * 4).to(dtype)
    positions = torch.randint(0, 32768, (tokens,), generator=gen)
    cos, sin = RotaryEmbedding(head_dim, 500000.0, None).lookup(positions, dtype)
    return qkv, cos, sin


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize(("tokens", "heads", "kv_heads", "head_dim"),
                         [(1, 12, 4, 64), (7, 4, 2, 8), (300, 12, 12, 64), (3, 1, 1, 2)])
def test_in_place_rotation_is_bitwise_the_reference_and_leaves_v_alone(dtype, tokens, heads, kv_heads, head_dim):
    qkv, cos, sin = _qkv_and_angles(dtype, tokens, heads, kv_heads, head_dim)
    before = qkv.clone()
    qk_size = (heads + kv_heads) * head_dim
    qk = qkv[:, :qk_size].view(tokens, heads + kv_heads, head_dim)  # strided: rows of the whole projection
    want = apply_rotary(qk.clone(), cos, sin)
    got = apply_rotary_(qk, cos, sin)
    assert got.data_ptr() == qk.data_ptr(), "rotated where it lies"
    assert torch.equal(got, want)
    assert torch.equal(qkv[:, qk_size:], before[:, qk_size:]), "v is not touched"


@needs_kernels
def test_kernel_refuses_what_it_does_not_serve():
    cos = sin = torch.ones(2, 1, 4, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="bfloat16"):
        torch.ops.laneway.rotary_embedding_(torch.zeros(2, 3, 4), cos, sin)
    with pytest.raises(RuntimeError, match="D even"):
        torch.ops.laneway.rotary_embedding_(torch.zeros(2, 3, 5, dtype=torch.bfloat16), cos, sin)
    with pytest.raises(RuntimeError, match=r"\(T, 1, D\)"):
        torch.ops.laneway.rotary_embedding_(torch.zeros(3, 3, 4, dtype=torch.bfloat16), cos, sin)
