"""The Triton kernel against the slow reference and the torch path, on CPU via the interpreter."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tests.workers.triton.factories import make_batch, visible_slots
from workers.kernels.reference_attention import reference_paged_attention
from workers.kernels.torch_paged_attention import torch_paged_attention
from workers.kernels.triton_paged_attention import triton_paged_attention

# (q_len, seq_len) per sequence. q_len == seq_len is a fresh prefill, 1 < q_len < seq_len a
# chunk after a cached prefix, q_len == 1 a decode. Few seq_lens are block multiples.
CASES = [
    # block_size, Hq, Hkv, D, seqs
    pytest.param(4, 2, 2, 16, [(7, 7), (5, 13), (1, 9), (1, 1)], id="bs4-mha-d16-mixed"),
    pytest.param(8, 4, 2, 32, [(1, 21), (40, 70), (1, 8), (3, 3)], id="bs8-gqa2-d32-long-chunk"),
    pytest.param(16, 8, 2, 24, [(1, 1), (1, 17), (1, 33), (1, 50)], id="bs16-gqa4-d24-decode"),
    pytest.param(16, 4, 1, 24, [(9, 30), (1, 16), (0, 5), (17, 17)], id="bs16-gqa4-d24-mixed-empty"),
    pytest.param(4, 4, 2, 24, [(2, 37), (1, 6), (11, 11)], id="bs4-gqa2-d24-mixed"),
]


@pytest.mark.parametrize("block_size, num_heads, num_kv_heads, head_dim, seqs", CASES)
def test_matches_reference_and_torch_path(
    device: torch.device,
    block_size: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    seqs: list[tuple[int, int]],
) -> None:
    batch = make_batch(seqs, block_size, num_heads, num_kv_heads, head_dim, seed=block_size + head_dim, device=device)
    scale = 1 / math.sqrt(head_dim)
    out = triton_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale).cpu()

    cpu = make_batch(seqs, block_size, num_heads, num_kv_heads, head_dim, seed=block_size + head_dim)
    expected = reference_paged_attention(cpu.q, cpu.k_cache, cpu.v_cache, cpu.md, scale)
    torch_out = torch_paged_attention(cpu.q, cpu.k_cache, cpu.v_cache, cpu.md, scale)
    assert out.shape == expected.shape, f"{out.shape} != {expected.shape}"
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out, torch_out, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_random_mixed_batches(device: torch.device, seed: int) -> None:
    rng = random.Random(seed)
    block_size, group, head_dim = rng.choice([4, 8, 16]), rng.choice([1, 2, 4]), rng.choice([16, 24, 32, 40])
    num_kv_heads = rng.choice([1, 2])
    seqs = []
    for _ in range(rng.randint(1, 5)):
        seq_len = rng.randint(1, 60)
        q_len = rng.choice([1, 1, seq_len, rng.randint(1, seq_len)])  # decode, full prefill, chunk
        seqs.append((q_len, seq_len))
    args = (seqs, block_size, num_kv_heads * group, num_kv_heads, head_dim)
    batch = make_batch(*args, seed=seed, device=device)
    out = triton_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale=0.3).cpu()
    cpu = make_batch(*args, seed=seed)
    expected = reference_paged_attention(cpu.q, cpu.k_cache, cpu.v_cache, cpu.md, scale=0.3)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4, msg=lambda m: f"{args}: {m}")


def test_never_reads_slots_outside_the_context(device: torch.device) -> None:
    # NaN everywhere no query may look: spare blocks, padded table entries (block 0 may be
    # one), and the tails of last blocks. A single unmasked read turns a row into NaN.
    seqs = [(6, 11), (1, 5), (3, 3)]
    batch = make_batch(seqs, block_size=8, num_heads=2, num_kv_heads=1, head_dim=16, seed=3, device=device)
    keep = visible_slots(batch.md).to(device)
    poisoned = []
    for cache in (batch.k_cache, batch.v_cache):
        flat = cache.view(-1, *cache.shape[2:])  # (num_slots, Hkv, D)
        clean = torch.full_like(flat, float("nan"))
        clean[keep] = flat[keep]
        poisoned.append(clean.view(cache.shape))
    assert poisoned[0].isnan().any(), "the poisoned pool should hold NaNs outside the context"

    out = triton_paged_attention(batch.q, poisoned[0], poisoned[1], batch.md, scale=0.25).cpu()
    cpu = make_batch(seqs, block_size=8, num_heads=2, num_kv_heads=1, head_dim=16, seed=3)
    expected = reference_paged_attention(cpu.q, cpu.k_cache, cpu.v_cache, cpu.md, scale=0.25)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_half_precision_and_strided_queries(device: torch.device, dtype: torch.dtype, tol: float) -> None:
    if dtype == torch.bfloat16 and device.type == "cpu":
        pytest.skip("triton's interpreter computes bf16 tl.dot on raw bits; covered on CUDA only")
    # q as a column slice of a fused qkv projection: its token stride is not Hq * D.
    seqs = [(5, 12), (1, 20), (1, 3)]
    num_heads, num_kv_heads, head_dim = 4, 2, 32
    batch = make_batch(seqs, 8, num_heads, num_kv_heads, head_dim, dtype=dtype, seed=5, device=device)
    qkv = torch.zeros(batch.q.shape[0], num_heads + 2 * num_kv_heads, head_dim, dtype=dtype, device=device)
    qkv[:, :num_heads] = batch.q
    q = qkv[:, :num_heads]  # (T, Hq, D), non-contiguous view
    assert not q.is_contiguous()

    out = triton_paged_attention(q, batch.k_cache, batch.v_cache, batch.md, scale=1 / math.sqrt(head_dim))
    assert out.dtype == dtype
    cpu = make_batch(seqs, 8, num_heads, num_kv_heads, head_dim, dtype=dtype, seed=5)
    expected = reference_paged_attention(cpu.q, cpu.k_cache, cpu.v_cache, cpu.md, scale=1 / math.sqrt(head_dim))
    torch.testing.assert_close(out.cpu(), expected, atol=tol, rtol=tol)


def test_interpreter_refuses_bfloat16(device: torch.device) -> None:
    if device.type != "cpu":
        pytest.skip("only the interpreter has the bf16 dot bug")
    batch = make_batch([(2, 5)], 4, 2, 1, 16, dtype=torch.bfloat16, device=device)
    with pytest.raises(NotImplementedError, match="bfloat16"):
        triton_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale=0.25)


def test_empty_batch(device: torch.device) -> None:
    batch = make_batch([(0, 4)], block_size=4, num_heads=2, num_kv_heads=1, head_dim=16, device=device)
    out = triton_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale=0.25)
    assert out.shape == (0, 2, 16)


def test_rejects_mismatched_block_size(device: torch.device) -> None:
    batch = make_batch([(2, 5)], block_size=4, num_heads=2, num_kv_heads=1, head_dim=16, device=device)
    k_cache = torch.zeros(4, 8, 1, 16, device=device)  # 8-token blocks, metadata says 4
    with pytest.raises(AssertionError, match="block size"):
        triton_paged_attention(batch.q, k_cache, k_cache, batch.md, scale=0.25)
