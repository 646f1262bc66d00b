"""Pick the next token for every row of a logits batch.

Row i of `logits` belongs to seqs[i]. First the requests' own adjustments, on a copy (the
raw logits stay for logprobs): logit_bias, then repetition/frequency/presence penalties,
then min_tokens' block on stop tokens; last, rows with a grammar lose their illegal tokens
(grammar_mask.py), so nothing can lift the grammar. Greedy rows take the argmax. Random rows are
scaled by their temperature, masked by top-k/top-p in one batched pass, and drawn with
the exponential-race trick: argmax(probs / E) with E ~ Exp(1) i.i.d. picks token t with
probability probs[t]. Only the noise E is per row, so seeded rows draw their noise from
their own generator (see seeding.py) and everything else stays batched.
"""

from __future__ import annotations

import torch

from workers.engine.sequence import Sequence
from workers.sampling.grammar_mask import apply_grammar_masks
from workers.sampling.logit_bias import apply_logit_bias
from workers.sampling.logprobs import compute_logprobs
from workers.sampling.masking import apply_top_k_top_p
from workers.sampling.min_tokens import block_early_stops
from workers.sampling.penalties import apply_penalties
from workers.sampling.result import SampleResult, TokenLogprobs
from workers.sampling.seeding import request_generator


def sample(
    logits: torch.Tensor, seqs: list[Sequence], generator: torch.Generator | None = None
) -> SampleResult:
    """logits (N, V): next-token logits, row i for seqs[i].

    `generator` is the shared stream for random rows without a seed (torch's default
    generator when None); the model runner owns it so a worker can be seeded as a whole.
    """
    assert logits.dim() == 2, f"logits must be (N, V), got {tuple(logits.shape)}"
    assert logits.shape[0] == len(seqs), f"{logits.shape[0]} logit rows for {len(seqs)} sequences"
    if not seqs:
        return SampleResult(token_ids=[], logprobs=[])
    logits = logits.float()
    raw_logits = logits  # logprobs describe the model's distribution, before any adjustment
    # (N, V); `logits` itself when no row asks for anything
    adjusted = apply_grammar_masks(_adjusted(logits, seqs), seqs)

    wants_logprobs = any(seq.sampling.logprobs is not None for seq in seqs)
    random_rows = [i for i, seq in enumerate(seqs) if not seq.sampling.is_greedy]
    if not random_rows and not wants_logprobs:
        # The common all-greedy batch: one argmax, no per-row work.
        return SampleResult(token_ids=adjusted.argmax(dim=-1).tolist(), logprobs=[None] * len(seqs))

    if len(random_rows) == len(seqs):
        token_ids = _sample_random(adjusted, seqs, generator)  # (N,)
    else:
        token_ids = adjusted.argmax(dim=-1)  # (N,) right for greedy rows; random rows overwritten
        if random_rows:
            rows = torch.tensor(random_rows, device=logits.device)
            random_seqs = [seqs[i] for i in random_rows]
            token_ids[rows] = _sample_random(adjusted.index_select(0, rows), random_seqs, generator)

    logprobs: list[TokenLogprobs | None] = (
        compute_logprobs(raw_logits, token_ids, seqs) if wants_logprobs else [None] * len(seqs))
    return SampleResult(token_ids=token_ids.tolist(), logprobs=logprobs)


def _adjusted(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """The logits after each request's bias, penalties and min_tokens block: a copy when any
    row has one (logprobs report the model's raw distribution, logprobs.py), else `logits`."""
    if not any(s.sampling.logit_bias or s.sampling.has_penalties or not s.may_stop for s in seqs):
        return logits
    adjusted = apply_penalties(apply_logit_bias(logits.clone(), seqs), seqs)
    return block_early_stops(adjusted, seqs)


def _sample_random(
    logits: torch.Tensor, seqs: list[Sequence], generator: torch.Generator | None
) -> torch.Tensor:
    """logits (R, V) of rows with temperature > 0; returns (R,) int64 token ids."""
    device = logits.device
    params = [seq.sampling for seq in seqs]
    temperatures = torch.tensor([p.temperature for p in params], device=device)
    scaled = logits / temperatures.unsqueeze(1)  # (R, V)

    if any(p.top_k > 0 or p.top_p < 1.0 for p in params):
        top_k = torch.tensor([p.top_k for p in params], dtype=torch.int64, device=device)
        top_p = torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device)
        scaled = apply_top_k_top_p(scaled, top_k, top_p)

    probs = scaled.softmax(dim=-1)  # (R, V), masked tokens have probability 0
    noise = _exponential_noise(seqs, logits.shape[1], device, generator)  # (R, V)
    return probs.div_(noise).argmax(dim=-1)


def _exponential_noise(
    seqs: list[Sequence], vocab_size: int, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """(R, V) i.i.d. Exp(1); seeded rows from their own (seed, step) stream, others shared."""
    noise = torch.empty(len(seqs), vocab_size, device=device)
    seeded_rows = [i for i, seq in enumerate(seqs) if seq.sampling.seed is not None]
    if len(seeded_rows) < len(seqs):
        # One draw for all shared rows; the values of seeded rows are overwritten below.
        noise.exponential_(generator=generator)
    for i in seeded_rows:
        seq = seqs[i]
        assert seq.sampling.seed is not None, "seeded_rows holds seeded sequences only"
        own = request_generator(seq.sampling.seed, seq.num_output_tokens, device)
        noise[i].exponential_(generator=own)
    # A zero draw would turn a masked token's 0/0 into NaN, which argmax ranks highest.
    return noise.clamp_min_(torch.finfo(noise.dtype).tiny)
