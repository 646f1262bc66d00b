"""The fused CPU decode kernel (kernels/csrc/decode_attention.cpp) against the slow reference,
on both its paths (AVX-512 bf16 tiles; scalar for everything else), and the plain torch
path it replaces, which still runs wherever the kernel cannot be built."""

from __future__ import annotations

import fcntl
import shutil

import pytest
import torch

from tests.workers.kernels.factories import make_paged_batch
from workers.kernels import torch_paged_attention
from workers.kernels.cpu_decode_attention import decode_kernel
from workers.kernels.cpu_extension import _build_dir, load_cpu_extension
from workers.kernels.reference_attention import reference_paged_attention

# Skipped only where nothing could build it; with a compiler and ninja a failed build fails.
CAN_BUILD = shutil.which("g++") is not None and shutil.which("ninja") is not None
needs_kernel = pytest.mark.skipif(not CAN_BUILD, reason="no g++ or ninja: the CPU decode kernel cannot build here")


@pytest.mark.skipif(not CAN_BUILD, reason="no g++ or ninja")
def test_the_kernel_builds_where_a_compiler_is_present():
    assert decode_kernel() is not None


def test_a_stale_torch_build_lock_is_cleared_under_our_own_lock(tmp_path, monkeypatch):
    # A build killed midway leaves torch's `lock` file; torch would wait on it forever.
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    stale = tmp_path / "laneway" / "ext" / "lock"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    with _build_dir("ext") as build_dir:
        assert build_dir == stale.parent and not stale.exists()
        with open(tmp_path / "laneway" / "ext.flock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one build at a time
    with open(tmp_path / "laneway" / "ext.flock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}


def decode_batch(seq_lens, block_size, heads, kv_heads, head_dim, dtype, seed=0):
    return make_paged_batch([1] * len(seq_lens), seq_lens, block_size, heads, kv_heads, head_dim, seed=seed,
                            dtype=dtype)


def run_kernel(batch):
    scale = batch.q.shape[-1] ** -0.5
    return decode_kernel()(batch.q, batch.k_cache, batch.v_cache, batch.md.block_tables, batch.md.seq_lens, scale)


def assert_matches_reference(batch, got):
    scale = batch.q.shape[-1] ** -0.5
    want = reference_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale)
    tol = TOLERANCE[batch.q.dtype]
    assert got.dtype == batch.q.dtype and got.shape == batch.q.shape
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(
    ("seq_lens", "block_size", "heads", "kv_heads", "head_dim"),
    [
        ([1, 16, 17, 40], 16, 12, 4, 64),  # the small preset's shape; tile edges
        ([33, 5], 32, 8, 8, 128),  # no GQA, two 16-row tiles per block
        ([9, 30, 2], 4, 8, 1, 64),  # blocks smaller than a tile, multi-query
        ([70], 16, 16, 2, 128),  # group of 8, the most the AVX-512 path keeps in registers
        ([12, 3], 16, 16, 1, 64),  # group of 16: scalar path
        ([7, 20], 8, 4, 2, 16),  # head_dim 16: scalar path
    ],
)
@pytest.mark.parametrize("threads", [1, 2])  # one head per work item when sequences are few
def test_kernel_matches_reference(dtype, seq_lens, block_size, heads, kv_heads, head_dim, threads):
    torch.set_num_threads(threads)
    batch = decode_batch(seq_lens, block_size, heads, kv_heads, head_dim, dtype)
    assert_matches_reference(batch, run_kernel(batch))


@needs_kernel
def test_kernel_ignores_pool_noise_past_each_context():
    batch = decode_batch([3, 18], 16, 12, 4, 64, torch.bfloat16)
    used = {int(b) for row, n in zip(batch.md.block_tables, (1, 2)) for b in row[:n]}
    for block in range(batch.k_cache.shape[0]):
        if block not in used:
            batch.k_cache[block] = 1e4
            batch.v_cache[block] = -1e4
    first = batch.md.block_tables[0, 0]
    batch.k_cache[first, 3:] = 1e4  # same block as sequence 0's context, past its 3 tokens
    batch.v_cache[first, 3:] = -1e4
    assert_matches_reference(batch, run_kernel(batch))


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_is_batch_invariant(threads):
    """A sequence's output does not depend on who else is in the batch (nor on threading)."""
    batch = decode_batch([5, 37, 64, 1, 29], 16, 12, 4, 64, torch.bfloat16, seed=3)
    together = run_kernel(batch)
    torch.set_num_threads(threads)  # alone, a sequence is split by head across the threads
    for b in range(5):
        alone = decode_kernel()(batch.q[b:b + 1], batch.k_cache, batch.v_cache, batch.md.block_tables[b:b + 1],
                                batch.md.seq_lens[b:b + 1], 64**-0.5)
        assert torch.equal(alone, together[b:b + 1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_torch_fallback_matches_reference(monkeypatch, dtype):
    monkeypatch.setattr(torch_paged_attention, "decode_kernel", lambda: None)
    batch = make_paged_batch([1, 1, 1, 5], [9, 30, 16, 12], 4, 12, 4, 64, dtype=dtype)
    got = torch_paged_attention.torch_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, 64**-0.5)
    assert_matches_reference(batch, got)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("LANEWAY_CPU_KERNELS", "0")
    load_cpu_extension.cache_clear()
    try:
        assert decode_kernel() is None
    finally:
        monkeypatch.delenv("LANEWAY_CPU_KERNELS")
        load_cpu_extension.cache_clear()
