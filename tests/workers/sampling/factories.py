"""Small builders for sampler tests."""

from __future__ import annotations

import math

import torch

from workers.engine.sequence import SamplingParams, Sequence


def make_seq(num_output_tokens: int = 0, seq_id: str = "s", **sampling: object) -> Sequence:
    """A sequence with a 3-token prompt that has produced `num_output_tokens` tokens."""
    params = SamplingParams(**sampling)  # type: ignore[arg-type]
    seq = Sequence(seq_id=seq_id, token_ids=[1, 2, 3], sampling=params)
    for _ in range(num_output_tokens):
        seq.append_token(7)
    return seq


def logits_for_probs(probs: list[float]) -> torch.Tensor:
    """(V,) logits whose softmax is `probs`."""
    return torch.tensor([math.log(p) for p in probs], dtype=torch.float32)


def frequencies(token_ids: list[int], vocab_size: int) -> list[float]:
    counts = torch.bincount(torch.tensor(token_ids), minlength=vocab_size)
    return (counts.float() / len(token_ids)).tolist()
