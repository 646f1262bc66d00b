"""vLLM's min_tokens: no end before a request's min_tokens output tokens.

Until then the tokens that would end the sequence (its eos, unless ignore_eos, and its stop
token ids) get a -inf logit, so they are never sampled. Stop strings are not matched before
that either (the engine tells the detokenizer); max_tokens still ends the sequence.
"""

from __future__ import annotations

import torch

from workers.engine.sequence import Sequence


def stop_token_ids(seq: Sequence) -> tuple[int, ...]:
    """The token ids that end seq when sampled."""
    eos = () if seq.eos_token_id is None or seq.sampling.ignore_eos else (seq.eos_token_id,)
    return eos + seq.sampling.stop_token_ids


def block_early_stops(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """logits (N, V), row i for seqs[i]: stop tokens at -inf in place while below min_tokens; returned."""
    row_ids: list[int] = []
    token_ids: list[int] = []
    for i, seq in enumerate(seqs):
        if not seq.may_stop:
            # An id past the logits' width can never be sampled: nothing to block.
            stops = [t for t in stop_token_ids(seq) if t < logits.shape[1]]
            row_ids += [i] * len(stops)
            token_ids += stops
    if row_ids:
        device = logits.device
        logits[torch.tensor(row_ids, device=device), torch.tensor(token_ids, device=device)] = float("-inf")
    return logits
