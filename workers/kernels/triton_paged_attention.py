"""Paged attention as one Triton kernel, the CUDA path (same contract as torch_paged_attention).

One program owns one (sequence b, tile of query rows, KV head). Its rows are the
(query token, query head) pairs of sequence b whose query heads share that KV head, so a
decode step with GQA reads each K/V tile once for the whole head group instead of once per
query head. The program walks the context in BLOCK_N-key tiles with an online softmax
(running max m, running sum l, float32 accumulator): no (q_len, seq_len) score matrix ever
exists. Keys are gathered token by token through the block table, so a key tile may span
several pool blocks and block_size need not divide BLOCK_N.

Triton is imported defensively: on a machine without it this module still imports, and
calling the kernel raises ImportError. Under TRITON_INTERPRET=1 (set before this module is
imported) the same kernel runs on CPU tensors, which is how tests check it without a GPU.
"""

from __future__ import annotations

import torch

from workers.kernels.metadata import AttentionMetadata

try:
    import triton
    import triton.language as tl
except ImportError as error:  # only CUDA machines are expected to have triton
    triton = None
    _TRITON_IMPORT_ERROR: ImportError | None = error
else:
    _TRITON_IMPORT_ERROR = None

# tl.dot needs every dimension >= 16 on GPU; 64 keeps a prefill tile's registers modest.
_MIN_DOT_DIM = 16
_MAX_BLOCK_M = 64
_BLOCK_N = 32
_LOG2E = 1.4426950408889634  # softmax via exp2: exp(x) == exp2(x * log2(e))


if triton is not None:

    @triton.jit
    def _paged_attention_kernel(
        q_ptr, k_cache_ptr, v_cache_ptr, out_ptr,
        query_start_loc_ptr, seq_lens_ptr, block_tables_ptr,
        qk_scale,  # scale * log2(e)
        stride_qt, stride_qh, stride_qd,
        stride_kb, stride_ko, stride_kh, stride_kd,
        stride_vb, stride_vo, stride_vh, stride_vd,
        stride_ot, stride_oh, stride_od,
        stride_bt,
        HEAD_DIM: tl.constexpr,
        HEAD_DIM_PAD: tl.constexpr,  # next power of two >= max(HEAD_DIM, 16); the rest is masked
        GROUP: tl.constexpr,  # query heads per KV head
        BLOCK_SIZE: tl.constexpr,  # tokens per pool block
        BLOCK_M: tl.constexpr,  # (token, head) rows per program
        BLOCK_N: tl.constexpr,  # keys per loop iteration
        DOT_PRECISION: tl.constexpr,  # "ieee" for float32 inputs, so they are not rounded to tf32
    ):
        seq = tl.program_id(0)
        tile = tl.program_id(1)
        kv_head = tl.program_id(2)

        q_start = tl.load(query_start_loc_ptr + seq)
        q_len = tl.load(query_start_loc_ptr + seq + 1) - q_start
        seq_len = tl.load(seq_lens_ptr + seq)
        num_rows = q_len * GROUP
        if tile * BLOCK_M >= num_rows:  # the grid is sized for the longest query of the batch
            return

        # Row r is query token r // GROUP of this sequence, query head kv_head * GROUP + r % GROUP.
        rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
        row_valid = rows < num_rows
        token = rows // GROUP
        head = kv_head * GROUP + rows % GROUP
        pos = seq_len - q_len + token  # each row's own position; it sees keys [0, pos]
        dims = tl.arange(0, HEAD_DIM_PAD)  # (D_PAD,)
        dim_valid = dims < HEAD_DIM

        q_offsets = (q_start + token)[:, None] * stride_qt + head[:, None] * stride_qh + dims[None, :] * stride_qd
        row_mask = row_valid[:, None] & dim_valid[None, :]  # (BLOCK_M, D_PAD)
        q = tl.load(q_ptr + q_offsets, mask=row_mask, other=0.0)  # (BLOCK_M, D_PAD)

        m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM_PAD), dtype=tl.float32)

        # Keys past the tile's last valid row are invisible to every row of the tile.
        last_row = tl.minimum(tile * BLOCK_M + BLOCK_M, num_rows) - 1
        kv_end = seq_len - q_len + last_row // GROUP + 1
        table_row = block_tables_ptr + seq * stride_bt
        for kv_start in range(0, kv_end, BLOCK_N):
            keys = kv_start + tl.arange(0, BLOCK_N)  # (BLOCK_N,) context positions
            key_valid = keys < kv_end
            # int64: block * stride_kb overflows int32 on large pools.
            block = tl.load(table_row + keys // BLOCK_SIZE, mask=key_valid, other=0).to(tl.int64)
            offset = keys % BLOCK_SIZE
            kv_mask = key_valid[:, None] & dim_valid[None, :]  # (BLOCK_N, D_PAD)
            k_offsets = (
                block[:, None] * stride_kb + offset[:, None] * stride_ko + kv_head * stride_kh
                + dims[None, :] * stride_kd
            )
            v_offsets = (
                block[:, None] * stride_vb + offset[:, None] * stride_vo + kv_head * stride_vh
                + dims[None, :] * stride_vd
            )
            k = tl.load(k_cache_ptr + k_offsets, mask=kv_mask, other=0.0)  # (BLOCK_N, D_PAD)
            v = tl.load(v_cache_ptr + v_offsets, mask=kv_mask, other=0.0)  # (BLOCK_N, D_PAD)

            scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
            visible = (keys[None, :] <= pos[:, None]) & key_valid[None, :]
            scores = tl.where(visible, scores, float("-inf"))
            # Key 0 is visible to every row, so after the first tile m_i is finite and
            # fully masked later tiles give exp2(-inf) == 0 rather than NaN.
            m_new = tl.maximum(m_i, tl.max(scores, axis=1))  # (BLOCK_M,)
            alpha = tl.exp2(m_i - m_new)  # rescales what was accumulated under the old max
            p = tl.exp2(scores - m_new[:, None])  # (BLOCK_M, BLOCK_N)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            m_i = m_new

        out = acc / l_i[:, None]  # (BLOCK_M, D_PAD)
        o_offsets = (q_start + token)[:, None] * stride_ot + head[:, None] * stride_oh + dims[None, :] * stride_od
        tl.store(out_ptr + o_offsets, out.to(out_ptr.dtype.element_ty), mask=row_mask)

    # TRITON_INTERPRET=1 at import swaps the compiled kernel for a numpy emulation.
    _INTERPRETED = not isinstance(_paged_attention_kernel, triton.runtime.JITFunction)


def triton_paged_attention(
    q: torch.Tensor,  # (T, Hq, D)
    k_cache: torch.Tensor,  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor,
    md: AttentionMetadata,
    scale: float,
) -> torch.Tensor:  # (T, Hq, D)
    if triton is None:
        raise ImportError("triton_paged_attention needs the `triton` package (CUDA machines)") from (
            _TRITON_IMPORT_ERROR
        )
    num_tokens, num_heads, head_dim = q.shape
    _, block_size, num_kv_heads, kv_head_dim = k_cache.shape
    assert k_cache.shape == v_cache.shape, f"k_cache {tuple(k_cache.shape)} != v_cache {tuple(v_cache.shape)}"
    assert head_dim == kv_head_dim, f"query head dim {head_dim} != cache head dim {kv_head_dim}"
    assert num_heads % num_kv_heads == 0, f"{num_heads} query heads not divisible by {num_kv_heads} KV heads"
    assert block_size == md.block_size, f"cache block size {block_size} != metadata block size {md.block_size}"
    assert num_tokens == md.num_tokens, f"{num_tokens} query tokens but metadata has {md.num_tokens}"
    assert q.dtype == k_cache.dtype == v_cache.dtype, f"dtypes differ: {q.dtype}, {k_cache.dtype}, {v_cache.dtype}"
    tensors = (("query_start_loc", md.query_start_loc), ("seq_lens", md.seq_lens), ("block_tables", md.block_tables))
    for name, t in tensors:
        assert t.device == q.device, f"md.{name} is on {t.device}, queries on {q.device}"

    if q.dtype == torch.bfloat16 and _INTERPRETED:
        # The interpreter keeps bf16 as raw uint16 bits and its tl.dot multiplies those
        # integers: the result would be silently wrong, so refuse (float16/float32 are exact).
        raise NotImplementedError("bfloat16 is not supported under TRITON_INTERPRET (interpreter tl.dot bug)")

    out = torch.empty_like(q)
    if num_tokens == 0:
        return out
    group = num_heads // num_kv_heads
    rows = md.max_query_len * group  # (token, head) rows of the longest query, per KV head
    block_m = min(_MAX_BLOCK_M, max(_MIN_DOT_DIM, triton.next_power_of_2(rows)))
    grid = (md.num_seqs, triton.cdiv(rows, block_m), num_kv_heads)
    _paged_attention_kernel[grid](
        q, k_cache, v_cache, out,
        md.query_start_loc, md.seq_lens, md.block_tables,
        scale * _LOG2E,
        *q.stride(), *k_cache.stride(), *v_cache.stride(), *out.stride(),
        md.block_tables.stride(0),
        HEAD_DIM=head_dim,
        HEAD_DIM_PAD=max(_MIN_DOT_DIM, triton.next_power_of_2(head_dim)),
        GROUP=group,
        BLOCK_SIZE=block_size,
        BLOCK_M=block_m,
        BLOCK_N=_BLOCK_N,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
    )
    return out
