"""Logit adjustments (penalties, logit_bias, min_tokens) against a slow per-token reference.

The reference walks every row and every token in plain Python, straight from the
definitions (vLLM's, and OpenAI's for presence/frequency); the batched torch code must
agree with it on random batches that mix requests with and without adjustments.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import SamplingParams, Sequence
from workers.sampling import sample
from workers.sampling import sampler as sampler_module
from workers.sampling.logit_bias import apply_logit_bias
from workers.sampling.min_tokens import block_early_stops
from workers.sampling.penalties import apply_penalties

VOCAB = 24
EOS = 2


def _reference(logits: list[float], seq: Sequence) -> list[float]:
    """One row, by the definitions, token by token, in the sampler's order."""
    p = seq.sampling
    out = list(logits)
    for token_id, bias in p.logit_bias:
        out[token_id] += bias
    prompt = seq.token_ids[: seq.num_prompt_tokens]
    output = seq.token_ids[seq.num_prompt_tokens :]
    for t in range(len(out)):
        if (t in prompt or t in output) and p.repetition_penalty != 1.0:
            out[t] = out[t] / p.repetition_penalty if out[t] > 0 else out[t] * p.repetition_penalty
        count = output.count(t)
        out[t] -= p.frequency_penalty * count + p.presence_penalty * (1 if count else 0)
    if len(output) < p.min_tokens:
        stops = list(p.stop_token_ids) + ([] if p.ignore_eos or seq.eos_token_id is None else [seq.eos_token_id])
        for t in stops:
            out[t] = -math.inf
    return out


def _random_seq(rng: random.Random, i: int) -> Sequence:
    kind = rng.choice(["plain", "penalties", "bias", "min", "all"])
    params: dict = {"max_tokens": 64}
    if kind in ("penalties", "all"):
        params.update(presence_penalty=rng.uniform(-2, 2), frequency_penalty=rng.uniform(-2, 2),
                      repetition_penalty=rng.choice([1.0, rng.uniform(0.5, 2.0)]))
    if kind in ("bias", "all"):
        ids = rng.sample(range(VOCAB), rng.randint(1, 5))
        params["logit_bias"] = tuple((t, rng.uniform(-100, 100)) for t in ids)
    if kind in ("min", "all"):
        params.update(min_tokens=rng.randint(0, 10), stop_token_ids=(5,), ignore_eos=rng.random() < 0.3)
    prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(1, 12))]
    seq = Sequence(seq_id=f"s{i}", token_ids=prompt, sampling=SamplingParams(**params), eos_token_id=EOS)
    for _ in range(rng.randint(0, 15)):
        seq.append_token(rng.randrange(VOCAB))
    return seq


def _adjust(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    return block_early_stops(apply_penalties(apply_logit_bias(logits.clone(), seqs), seqs), seqs)


@pytest.mark.parametrize("seed", range(8))
def test_batched_adjustments_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    seqs = [_random_seq(rng, i) for i in range(rng.randint(1, 9))]
    logits = torch.randn(len(seqs), VOCAB, generator=torch.Generator().manual_seed(seed)) * 3
    got = _adjust(logits, seqs)
    for i, seq in enumerate(seqs):
        expected = torch.tensor(_reference(logits[i].tolist(), seq))
        finite = torch.isfinite(expected)
        assert torch.equal(torch.isfinite(got[i]), finite), f"row {i}: -inf in other places"
        assert torch.allclose(got[i][finite], expected[finite], atol=1e-4), f"row {i} ({seq.sampling})"


def test_rows_without_adjustments_are_untouched() -> None:
    plain = Sequence(seq_id="p", token_ids=[1, 1, 3], sampling=SamplingParams())
    penalised = Sequence(seq_id="q", token_ids=[1, 1, 3], sampling=SamplingParams(frequency_penalty=1.0))
    penalised.append_token(4)
    logits = torch.randn(2, VOCAB)
    got = _adjust(logits, [plain, penalised])
    assert torch.equal(got[0], logits[0])
    assert got[1, 4] == pytest.approx(logits[1, 4].item() - 1.0)
    assert got[1, 1] == logits[1, 1], "frequency and presence count the output, not the prompt"


def test_repetition_penalty_counts_the_prompt_and_shrinks_towards_zero() -> None:
    seq = Sequence(seq_id="r", token_ids=[3, 4], sampling=SamplingParams(repetition_penalty=2.0))
    logits = torch.zeros(1, VOCAB)
    logits[0, 3], logits[0, 4], logits[0, 5] = 4.0, -4.0, 4.0
    got = _adjust(logits, [seq])[0]
    assert (got[3].item(), got[4].item(), got[5].item()) == (2.0, -8.0, 4.0)


def test_sampler_uses_adjusted_logits_but_reports_raw_logprobs() -> None:
    logits = torch.zeros(1, VOCAB)
    logits[0, 7] = 5.0
    seq = Sequence(seq_id="b", token_ids=[1], sampling=SamplingParams(logit_bias=((9, 100.0),), logprobs=1))
    result = sample(logits, [seq])
    assert result.token_ids == [9], "greedy picks the biased token"
    logprob, top = result.logprobs[0]
    assert logprob == pytest.approx(torch.log_softmax(logits[0], -1)[9].item())
    assert top[0][0] == 7, "alternatives come from the model's own distribution"


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_min_tokens_never_samples_a_stop_token_early(temperature: float) -> None:
    logits = torch.full((1, VOCAB), -5.0)
    logits[0, EOS] = logits[0, 5] = 10.0  # eos and a stop token are by far the likeliest
    seq = Sequence(seq_id="m", token_ids=[1], eos_token_id=EOS,
                   sampling=SamplingParams(temperature=temperature, min_tokens=3, stop_token_ids=(5,), max_tokens=8))
    for _ in range(3):
        token = sample(logits, [seq], torch.Generator().manual_seed(0)).token_ids[0]
        assert token not in (EOS, 5)
        seq.append_token(token)
    assert sample(logits, [seq], torch.Generator().manual_seed(0)).token_ids[0] in (EOS, 5)


def test_presence_penalty_shifts_the_sampling_distribution() -> None:
    logits = torch.zeros(4000, 4)  # uniform over 4 tokens
    seqs = []
    for i in range(4000):
        seq = Sequence(seq_id=str(i), token_ids=[1], sampling=SamplingParams(temperature=1.0, presence_penalty=2.0))
        seq.append_token(0)  # token 0 is in every output
        seqs.append(seq)
    tokens = sample(logits, seqs, torch.Generator().manual_seed(3)).token_ids
    share = tokens.count(0) / len(tokens)
    expected = math.exp(-2.0) / (math.exp(-2.0) + 3)  # about 0.043
    assert share == pytest.approx(expected, abs=0.02)


def test_plain_batches_skip_the_adjustment_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("a batch without adjustments ran the penalty code")

    monkeypatch.setattr(sampler_module, "apply_penalties", forbidden)
    seqs = [Sequence(seq_id=str(i), token_ids=[1, 2], sampling=SamplingParams()) for i in range(3)]
    assert len(sample(torch.randn(3, VOCAB), seqs).token_ids) == 3


@pytest.mark.parametrize("params", [
    {"presence_penalty": 2.5}, {"frequency_penalty": -3.0}, {"repetition_penalty": 0.0},
    {"repetition_penalty": math.inf}, {"logit_bias": ((1, 101.0),)}, {"logit_bias": ((-1, 1.0),)},
    {"min_tokens": 5, "max_tokens": 4}, {"min_tokens": -1}, {"prompt_logprobs": 21},
    {"presence_penalty": math.nan},
])
def test_out_of_range_values_are_invalid_requests(params: dict) -> None:
    with pytest.raises(InvalidRequest):
        SamplingParams(**params)
