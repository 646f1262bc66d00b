"""Batched top-k / top-p (nucleus) masking over rows that each carry their own k and p."""

from __future__ import annotations

import torch


def apply_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Return a copy of `logits` (R, V) with the tokens outside each row's top-k/top-p at -inf.

    top_k (R,) int64: 0 means off; k >= V keeps every token.
    top_p (R,) float32: 1 means off; keeps the smallest set of most likely tokens whose
    mass reaches p, measured on the distribution left after top-k (as HF and vLLM do).
    The most likely token always survives, so every row keeps at least one token.
    Ties keep index order (stable sort), so top-k=1 keeps exactly the token argmax picks.
    """
    num_rows, vocab_size = logits.shape
    assert top_k.shape == (num_rows,) and top_p.shape == (num_rows,), (
        f"top_k {tuple(top_k.shape)} and top_p {tuple(top_p.shape)} must be ({num_rows},)"
    )
    sorted_logits, sorted_ids = logits.sort(dim=-1, descending=True, stable=True)  # (R, V)
    positions = torch.arange(vocab_size, device=logits.device).unsqueeze(0)  # (1, V)

    k = torch.where(top_k > 0, top_k, vocab_size).unsqueeze(1)  # (R, 1)
    sorted_logits.masked_fill_(positions >= k, float("-inf"))

    is_top_p_on = top_p < 1.0
    if bool(is_top_p_on.any()):
        probs = sorted_logits.softmax(dim=-1)  # (R, V), renormalised after top-k
        mass_before = probs.cumsum(dim=-1) - probs  # (R, V) mass of strictly more likely tokens
        drop = (mass_before >= top_p.unsqueeze(1)) & is_top_p_on.unsqueeze(1)
        drop[:, 0] = False  # rounding (or p == 0) must never empty a row
        sorted_logits.masked_fill_(drop, float("-inf"))

    return torch.empty_like(logits).scatter_(1, sorted_ids, sorted_logits)
