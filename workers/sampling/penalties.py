"""Repetition, frequency and presence penalties, batched over the rows that ask for them.

As vLLM (and HF for the repetition penalty) define them, in this order:
- repetition_penalty p (CTRL, HF): for every token of the prompt or the output so far, a
  positive logit is divided by p and a negative one multiplied by p (p > 1 discourages);
- frequency_penalty f and presence_penalty r (OpenAI): each token's logit loses
  f * (times it occurs in the output) + r * (1 if it occurs in the output at all).
  OpenAI's text counts "the text so far" as the generated text: prompt tokens do not count.

Rows without penalties are left untouched and cost nothing. Counting a row's output is
O(its length) per step: a request that asks pays for it, nobody else does.
"""

from __future__ import annotations

import torch

from workers.engine.sequence import Sequence


def apply_penalties(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """logits (N, V) float32, row i for seqs[i]: penalised in place for the rows that ask; returned."""
    rows = [i for i, seq in enumerate(seqs) if seq.sampling.has_penalties]
    if not rows:
        return logits
    device, vocab_size = logits.device, logits.shape[1]
    row_index = torch.tensor(rows, device=device)
    params = [seqs[i].sampling for i in rows]
    picked = logits.index_select(0, row_index)  # (R, V)

    output_counts = _token_counts([seqs[i].output_token_ids for i in rows], vocab_size, device)  # (R, V)
    in_output = output_counts > 0  # (R, V)

    repetition = torch.tensor([p.repetition_penalty for p in params], device=device).unsqueeze(1)  # (R, 1)
    if bool((repetition != 1.0).any()):
        prompts = [seqs[i].token_ids[: seqs[i].num_prompt_tokens] for i in rows]
        seen = in_output | (_token_counts(prompts, vocab_size, device) > 0)  # (R, V)
        penalised = torch.where(picked > 0, picked / repetition, picked * repetition)
        picked = torch.where(seen, penalised, picked)

    frequency = torch.tensor([p.frequency_penalty for p in params], device=device).unsqueeze(1)  # (R, 1)
    presence = torch.tensor([p.presence_penalty for p in params], device=device).unsqueeze(1)  # (R, 1)
    picked = picked - frequency * output_counts - presence * in_output.float()
    return logits.index_copy_(0, row_index, picked)


def _token_counts(token_lists: list[list[int]], vocab_size: int, device: torch.device) -> torch.Tensor:
    """(R, V) float32: how often each token occurs in each list."""
    longest = max((len(ids) for ids in token_lists), default=0)
    counts = torch.zeros(len(token_lists), vocab_size + 1, device=device)  # last column: padding
    if longest == 0:
        return counts[:, :vocab_size]
    padded = torch.tensor([ids + [vocab_size] * (longest - len(ids)) for ids in token_lists],
                          dtype=torch.int64, device=device)  # (R, L)
    counts.scatter_add_(1, padded, torch.ones_like(padded, dtype=counts.dtype))
    return counts[:, :vocab_size]
