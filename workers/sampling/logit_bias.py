"""OpenAI's logit_bias: a per-request value added to chosen tokens' logits, batched.

A bias of -100 all but bans a token and +100 all but forces it, as OpenAI describes; the
values are added to the raw logits before penalties, temperature, top-k and top-p.
"""

from __future__ import annotations

import torch

from workers.engine.sequence import Sequence


def apply_logit_bias(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """logits (N, V) float32, row i for seqs[i]: biased in place where asked; returned.

    Token ids lie inside the vocabulary: the wire module refuses others (InvalidRequest)."""
    row_ids: list[int] = []
    token_ids: list[int] = []
    values: list[float] = []
    for i, seq in enumerate(seqs):
        for token_id, bias in seq.sampling.logit_bias:
            row_ids.append(i)
            token_ids.append(token_id)
            values.append(bias)
    if not row_ids:
        return logits
    device = logits.device
    index = (torch.tensor(row_ids, device=device), torch.tensor(token_ids, device=device))
    return logits.index_put_(index, torch.tensor(values, device=device, dtype=logits.dtype), accumulate=True)
