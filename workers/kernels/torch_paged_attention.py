"""Paged attention in plain torch, the CPU path (and a portable fallback anywhere else).

Decode tokens of all sequences go through one batched op: their K/V blocks are gathered
into a (B, S, Hkv, D) tensor padded to the longest context and masked. Each prefill chunk
gets its own scaled_dot_product_attention over its gathered context. No per-sequence
contiguous cache exists; everything is read from the pool through block tables.

Padding reads real pool blocks (block 0 for padded table entries) and masks them out, so
the pool must only ever hold finite values (allocate_kv_cache zero-fills it).

On CPU the decode rows go to the fused kernel of cpu_decode_attention.py when it built:
it reads K/V in place instead of gathering them, several times faster at batch >= 8.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from workers.kernels.cpu_decode_attention import decode_kernel
from workers.kernels.metadata import AttentionMetadata


def torch_paged_attention(
    q: torch.Tensor,  # (T, Hq, D)
    k_cache: torch.Tensor,  # (num_blocks, block_size, Hkv, D)
    v_cache: torch.Tensor,
    md: AttentionMetadata,
    scale: float,
) -> torch.Tensor:  # (T, Hq, D)
    q_lens, seq_lens = md.query_lens_list, md.seq_lens_list
    if md.is_pure_decode:  # token t belongs to sequence t
        return _decode(q, k_cache, v_cache, md.block_tables, md.seq_lens, md.max_seq_len, scale)

    out = torch.empty_like(q)
    starts = list(itertools.accumulate(q_lens, initial=0))
    decode_seqs = [b for b, n in enumerate(q_lens) if n == 1]
    if len(decode_seqs) > 1:
        rows = torch.tensor(decode_seqs, device=q.device)
        tokens = torch.tensor([starts[b] for b in decode_seqs], device=q.device)
        max_len = max(seq_lens[b] for b in decode_seqs)
        out[tokens] = _decode(
            q[tokens], k_cache, v_cache, md.block_tables[rows], md.seq_lens[rows], max_len, scale
        )
    for b, (q_len, seq_len) in enumerate(zip(q_lens, seq_lens)):
        if q_len == 0 or (q_len == 1 and len(decode_seqs) > 1):
            continue
        s, e = starts[b], starts[b + 1]
        out[s:e] = _prefill(q[s:e], k_cache, v_cache, md.block_tables[b], seq_len, scale)
    return out


def _decode(
    q: torch.Tensor,  # (B, Hq, D): one query token per sequence, at position seq_len - 1
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,  # (B, max_num_blocks)
    seq_lens: torch.Tensor,  # (B,)
    max_seq_len: int,
    scale: float,
) -> torch.Tensor:  # (B, Hq, D)
    kernel = decode_kernel() if q.device.type == "cpu" else None
    if kernel is not None:
        return kernel(q.contiguous(), k_cache, v_cache, block_tables.int(), seq_lens.int(), scale)
    num_seqs, num_heads, head_dim = q.shape
    block_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    group = num_heads // num_kv_heads
    num_blocks = -(-max_seq_len // block_size)
    blocks = block_tables[:, :num_blocks].reshape(-1).long()  # (B * nb,)
    span = num_blocks * block_size
    k = _gather_blocks(k_cache, blocks).view(num_seqs, span, num_kv_heads, head_dim)  # (B, S, Hkv, D)
    v = _gather_blocks(v_cache, blocks).view(num_seqs, span, num_kv_heads, head_dim)
    visible = torch.arange(span, device=q.device)[None, :] < seq_lens[:, None]  # (B, S)
    # GQA without copying K/V per query head: the `group` query heads sharing a KV head
    # become `group` query rows of one attention over that head.
    qg = q.reshape(num_seqs, num_kv_heads, group, head_dim)  # (B, Hkv, G, D)
    out = F.scaled_dot_product_attention(
        qg, k.transpose(1, 2), v.transpose(1, 2), attn_mask=visible[:, None, None, :], scale=scale
    )  # (B, Hkv, G, D)
    return out.reshape(num_seqs, num_heads, head_dim)  # (B, Hq, D)


def _prefill(
    q: torch.Tensor,  # (n, Hq, D): the chunk's queries, positions seq_len - n .. seq_len - 1
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,  # (max_num_blocks,)
    seq_len: int,
    scale: float,
) -> torch.Tensor:  # (n, Hq, D)
    q_len = q.shape[0]
    block_size, num_kv_heads, head_dim = k_cache.shape[1:]
    num_blocks = -(-seq_len // block_size)
    blocks = block_table[:num_blocks].long()
    k = _gather_blocks(k_cache, blocks).view(-1, num_kv_heads, head_dim)[:seq_len]  # (S, Hkv, D)
    v = _gather_blocks(v_cache, blocks).view(-1, num_kv_heads, head_dim)[:seq_len]
    qh, kh, vh = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # (H, n|S, D)
    if q_len == seq_len:  # no cached prefix: plain causal, top-left aligned
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale, enable_gqa=True)
    else:
        # Query i sits at position seq_len - q_len + i and sees keys up to it (bottom-right causal).
        query_pos = torch.arange(seq_len - q_len, seq_len, device=q.device)
        visible = torch.arange(seq_len, device=q.device)[None, :] <= query_pos[:, None]  # (n, S)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=visible, scale=scale, enable_gqa=True)
    return out.transpose(0, 1)  # (n, Hq, D)


def _gather_blocks(cache: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """(num_blocks, bs, Hkv, D) pool, (n,) int64 block ids -> (n, bs, Hkv, D) copy.

    index_select with int64 ids copies whole blocks; advanced indexing (cache[ids]) is about
    10x slower on CPU for the same bytes.
    """
    return cache.index_select(0, blocks)
