"""Logprobs of sampled tokens and their top-k alternatives.

Choice: logprobs describe the model's own distribution, log_softmax of the raw logits,
before temperature, top-k and top-p. That is what OpenAI reports, and it does not
change when a client turns the sampling knobs, so values stay comparable across requests.
"""

from __future__ import annotations

import torch

from workers.engine.sequence import Sequence
from workers.sampling.result import TokenLogprobs


def compute_logprobs(
    logits: torch.Tensor, token_ids: torch.Tensor, seqs: list[Sequence]
) -> list[TokenLogprobs | None]:
    """logits (N, V) raw, token_ids (N,) sampled; one entry per row, None where not asked."""
    rows = [i for i, seq in enumerate(seqs) if seq.sampling.logprobs is not None]
    result: list[TokenLogprobs | None] = [None] * len(seqs)
    if not rows:
        return result

    row_index = torch.tensor(rows, device=logits.device)
    logprobs = torch.log_softmax(logits.index_select(0, row_index), dim=-1)  # (L, V)
    sampled = logprobs.gather(1, token_ids.index_select(0, row_index).unsqueeze(1))  # (L, 1)
    sampled_list: list[float] = sampled.squeeze(1).tolist()

    ks = [min(_num_alternatives(seqs[i]), logits.shape[1]) for i in rows]
    max_k = max(ks)
    top_values: list[list[float]] = [[] for _ in rows]
    top_ids: list[list[int]] = [[] for _ in rows]
    if max_k > 0:
        values, ids = logprobs.topk(max_k, dim=-1)  # (L, max_k), sorted best first
        top_values, top_ids = values.tolist(), ids.tolist()

    for j, (i, k) in enumerate(zip(rows, ks)):
        alternatives = list(zip(top_ids[j][:k], top_values[j][:k]))
        result[i] = (sampled_list[j], alternatives)
    return result


def _num_alternatives(seq: Sequence) -> int:
    k = seq.sampling.logprobs
    # Callers pass only seqs that asked; SamplingParams refused a k outside [0, MAX_LOGPROBS].
    assert k is not None and k >= 0, f"sequence {seq.seq_id} asks for {k} logprobs"
    return k


def prompt_logprobs(logits: torch.Tensor, target_ids: list[int], ks: list[int]) -> list[TokenLogprobs]:
    """logits (P, V) raw, row j predicting target_ids[j]; ks[j] alternatives for row j.

    One (logprob of the target, top-k alternatives) per row: the logprobs of prompt tokens
    given the tokens before them (completions' echo with logprobs)."""
    assert logits.shape[0] == len(target_ids) == len(ks), (
        f"{logits.shape[0]} rows for {len(target_ids)} targets and {len(ks)} ks"
    )
    if not target_ids:
        return []
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (P, V)
    targets = torch.tensor(target_ids, device=logits.device).unsqueeze(1)  # (P, 1)
    chosen: list[float] = logprobs.gather(1, targets).squeeze(1).tolist()
    max_k = min(max(ks), logits.shape[1])
    top_values: list[list[float]] = [[] for _ in ks]
    top_ids: list[list[int]] = [[] for _ in ks]
    if max_k > 0:
        values, ids = logprobs.topk(max_k, dim=-1)  # (P, max_k), best first
        top_values, top_ids = values.tolist(), ids.tolist()
    return [(chosen[j], list(zip(top_ids[j][:k], top_values[j][:k]))) for j, k in enumerate(ks)]
