"""Constrained decoding in the sampler: each grammar row keeps only its legal tokens.

The grammar engine writes one packed bitmask per row into CPU memory (bit t of int32 word
t // 32 says token t is legal); the bitmask goes to the logits' device once per step and
is unpacked there with tensor ops, so the GPU path never copies logits back. A row whose
legal tokens the model itself rules out (-inf everywhere that is legal: a simulated
runner's letter-only logits) draws uniformly among the legal ones instead of from nothing.
"""

from __future__ import annotations

import torch

from workers.engine.sequence import Sequence


def apply_grammar_masks(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """logits (N, V) float32, row i for seqs[i]; returns logits with every grammar row masked
    (a new tensor when any row has a grammar, else `logits` itself)."""
    grammar_rows = [(i, seq, seq.grammar) for i, seq in enumerate(seqs) if seq.grammar is not None]
    if not grammar_rows:
        return logits
    rows = [i for i, _, _ in grammar_rows]
    num_rows, vocab_size = len(rows), logits.shape[1]
    num_words = (vocab_size + 31) // 32
    bitmask = torch.empty(num_rows, num_words, dtype=torch.int32)  # (R, W) CPU, written by the grammar engine
    steered: list[tuple[int, list[int]]] = []  # (row in bitmask, its only tokens) near the output's end
    for j, (_, seq, grammar) in enumerate(grammar_rows):
        tokens = grammar.steer(seq.num_tokens_left)
        if tokens is not None:
            steered.append((j, tokens))
            continue
        row = bitmask[j]
        grammar.fill_bitmask(row.data_ptr(), row.numel() * row.element_size())
    allowed = unpack_bitmask(bitmask.to(logits.device, non_blocking=True), vocab_size)  # (R, V) bool
    for j, tokens in steered:
        allowed[j].zero_()
        allowed[j, torch.tensor(tokens, device=logits.device)] = True

    row_index = torch.tensor(rows, device=logits.device)
    grammar_logits = logits.index_select(0, row_index)  # (R, V)
    masked = grammar_logits.masked_fill(~allowed, float("-inf"))
    nothing_left = torch.isneginf(masked).all(dim=1, keepdim=True)  # (R, 1)
    masked = torch.where(nothing_left & allowed, torch.zeros_like(masked), masked)
    out = logits.clone()
    out.index_copy_(0, row_index, masked)
    return out


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(R, W) int32 packed bits -> (R, vocab_size) bool, on bitmask's device."""
    shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)  # (32,)
    bits = (bitmask.unsqueeze(-1) >> shifts) & 1  # (R, W, 32); arithmetic shift, but & 1 keeps one bit
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()
