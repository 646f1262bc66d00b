from __future__ import annotations

import sys
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workers.kernels.factories import make_paged_batch
from workers.kernels.attention import paged_attention, select_attention_backend, write_kv
from workers.kernels.reference_attention import reference_paged_attention, reference_write_kv
from workers.kernels.torch_paged_attention import torch_paged_attention


def check_against_reference(batch, atol: float = 1e-5) -> None:
    scale = batch.q.shape[-1] ** -0.5
    got = torch_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale)
    want = reference_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale)
    assert got.shape == batch.q.shape
    torch.testing.assert_close(got.float(), want.float(), atol=atol, rtol=atol)


@pytest.mark.parametrize(
    ("q_lens", "seq_lens", "block_size", "heads", "kv_heads"),
    [
        ([1, 1, 1], [5, 1, 9], 4, 4, 2),  # pure decode, lengths not block multiples
        ([1, 1], [16, 3], 16, 2, 2),  # decode, one seq exactly one full block
        ([7], [7], 4, 4, 1),  # fresh prefill, multi-query (one KV head)
        ([3], [10], 4, 4, 4),  # prefill chunk after a cached prefix (bottom-right causal)
        ([1, 1, 4, 2], [6, 12, 4, 9], 2, 8, 2),  # mixed: two decodes, fresh prefill, chunk
        ([1, 5], [3, 5], 1, 2, 1),  # block_size 1, a lone decode handled per sequence
        ([2, 1, 1, 3], [2, 7, 20, 3], 8, 6, 3),  # decodes in the middle of the batch
    ],
)
def test_torch_path_matches_reference(q_lens, seq_lens, block_size, heads, kv_heads):
    check_against_reference(make_paged_batch(q_lens, seq_lens, block_size, heads, kv_heads, head_dim=8))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    data=st.data(),
    block_size=st.sampled_from([1, 2, 3, 4, 16]),
    kv_heads=st.sampled_from([1, 2]),
    group=st.sampled_from([1, 2, 4]),
    head_dim=st.sampled_from([4, 8]),
)
def test_torch_path_matches_reference_random(data, block_size, kv_heads, group, head_dim):
    num_seqs = data.draw(st.integers(1, 4))
    seq_lens = data.draw(st.lists(st.integers(1, 24), min_size=num_seqs, max_size=num_seqs))
    q_lens = [data.draw(st.sampled_from([1, s, max(1, s // 2), 1 + s // 3])) for s in seq_lens]
    seed = data.draw(st.integers(0, 2**16))
    batch = make_paged_batch(q_lens, seq_lens, block_size, kv_heads * group, kv_heads, head_dim, seed=seed)
    check_against_reference(batch)


def test_bfloat16_close_to_float64_reference():
    batch = make_paged_batch([1, 1, 6, 1], [9, 30, 6, 17], 4, 4, 2, head_dim=16, dtype=torch.bfloat16)
    check_against_reference(batch, atol=3e-2)


def test_pool_noise_outside_the_context_is_ignored():
    """Padding in decode gathers reads real blocks (here: huge values) and must mask them."""
    batch = make_paged_batch([1, 1], [2, 13], 4, 4, 2, head_dim=8)
    used = set(batch.md.block_tables[0, :1].tolist()) | set(batch.md.block_tables[1, :4].tolist())
    for block in range(batch.k_cache.shape[0]):
        if block not in used:
            batch.k_cache[block] = 1e4
            batch.v_cache[block] = -1e4
    batch.k_cache[batch.md.block_tables[0, 0], 2:] = 1e4  # same block, slots past the context
    check_against_reference(batch)


def test_causal_mask_hides_later_tokens_of_the_chunk():
    batch = make_paged_batch([4], [8], 4, 2, 2, head_dim=8)
    scale = 8**-0.5
    before = torch_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale)
    last_block = batch.md.block_tables[0, 1]
    batch.v_cache[last_block, 3] += 100.0  # position 7: only the last query may see it
    after = torch_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, scale)
    torch.testing.assert_close(after[:3], before[:3])
    assert not torch.allclose(after[3], before[3])


def test_write_kv_matches_reference_and_touches_only_its_slots():
    batch = make_paged_batch([3, 1], [5, 7], 4, 2, 2, head_dim=8)
    gen = torch.Generator().manual_seed(1)
    k, v = torch.randn(4, 2, 8, generator=gen), torch.randn(4, 2, 8, generator=gen)
    k_fast, v_fast = batch.k_cache.clone(), batch.v_cache.clone()
    write_kv(k, v, k_fast, v_fast, batch.md.slot_mapping)
    reference_write_kv(k, v, batch.k_cache, batch.v_cache, batch.md.slot_mapping)
    assert torch.equal(k_fast, batch.k_cache) and torch.equal(v_fast, batch.v_cache)
    slot = batch.md.slot_mapping[2].item()
    assert torch.equal(k_fast.view(-1, 2, 8)[slot], k[2])


def test_paged_attention_dispatches_to_the_cpu_backend():
    assert select_attention_backend("cpu") is torch_paged_attention
    batch = make_paged_batch([2, 1], [4, 6], 4, 4, 2, head_dim=8)
    got = paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, 0.3)
    assert torch.equal(got, torch_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, 0.3))


def test_cuda_backend_is_imported_lazily(monkeypatch):
    def fake_kernel(q, k_cache, v_cache, md, scale):
        return q

    module = types.ModuleType("workers.kernels.triton_paged_attention")
    module.triton_paged_attention = fake_kernel
    monkeypatch.setitem(sys.modules, "workers.kernels.triton_paged_attention", module)
    select_attention_backend.cache_clear()
    try:
        assert select_attention_backend("cuda") is fake_kernel
    finally:
        select_attention_backend.cache_clear()
