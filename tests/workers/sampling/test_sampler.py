from __future__ import annotations

import pytest
import torch

from tests.workers.sampling.factories import frequencies, logits_for_probs, make_seq
from workers.engine.sequence import Sequence
from workers.sampling import sample
from workers.sampling import sampler as sampler_module

VOCAB = 40


def _random_logits(num_rows: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_rows, VOCAB, generator=generator) * scale


def test_all_greedy_batch_takes_argmax_without_logprobs() -> None:
    logits = _random_logits(8)
    result = sample(logits, [make_seq(seq_id=str(i)) for i in range(8)])
    assert result.token_ids == logits.argmax(dim=-1).tolist()
    assert result.logprobs == [None] * 8


def test_greedy_rows_in_a_mixed_batch_take_argmax() -> None:
    logits = _random_logits(6, seed=1)
    seqs = [make_seq(temperature=1.0) if i % 2 else make_seq() for i in range(6)]
    result = sample(logits, seqs, torch.Generator().manual_seed(0))
    argmax = logits.argmax(dim=-1).tolist()
    assert [result.token_ids[i] for i in (0, 2, 4)] == [argmax[i] for i in (0, 2, 4)]


def test_empty_batch() -> None:
    result = sample(torch.empty(0, VOCAB), [])
    assert result.token_ids == [] and result.logprobs == []


def test_row_count_must_match_sequences() -> None:
    with pytest.raises(AssertionError, match="logit rows"):
        sample(_random_logits(2), [make_seq()])


def test_half_precision_logits_are_sampled_in_float32() -> None:
    logits = _random_logits(4, seed=2)
    result = sample(logits.to(torch.bfloat16), [make_seq(temperature=0.5, top_k=1) for _ in range(4)])
    assert result.token_ids == logits.to(torch.bfloat16).float().argmax(dim=-1).tolist()


@pytest.mark.parametrize("seed", [None, 5])
def test_top_k_one_equals_greedy(seed: int | None) -> None:
    logits = _random_logits(16, seed=3, scale=0.1)
    logits[0, 4] = logits[0, 9] = logits[0].max() + 1.0  # a tie: argmax picks the first
    seqs = [make_seq(temperature=0.5 + i / 16, top_k=1, seed=seed) for i in range(16)]  # all in (0, 2]
    result = sample(logits, seqs, torch.Generator().manual_seed(0))
    assert result.token_ids == logits.argmax(dim=-1).tolist()
    assert result.token_ids[0] == 4


def _make_neighbour(kind: str, i: int) -> Sequence:
    """g: greedy, u: random without seed, s: random with another seed."""
    if kind == "g":
        return make_seq(seq_id=f"g{i}")
    return make_seq(seq_id=f"{kind}{i}", temperature=1.3, seed=99 if kind == "s" else None)


def _draw_steps(seq_seed: int, logits_row: torch.Tensor, batch: str, num_steps: int = 12) -> list[int]:
    """Sample `num_steps` tokens of one seeded request T placed in a batch shaped like `batch`."""
    target = make_seq(seq_id="target", temperature=1.0, seed=seq_seed)
    row = batch.index("T")
    shared = torch.Generator().manual_seed(len(batch))  # a different shared stream per shape
    tokens = []
    for step in range(num_steps):
        seqs = [target if kind == "T" else _make_neighbour(kind, i) for i, kind in enumerate(batch)]
        logits = _random_logits(len(seqs), seed=100 + step)
        logits[row] = logits_row
        token = sample(logits, seqs, shared).token_ids[row]
        target.append_token(token)
        tokens.append(token)
    return tokens


def test_seeded_request_gets_same_tokens_whatever_the_batch() -> None:
    row = _random_logits(1, seed=4, scale=0.5)[0]  # flat enough that draws vary
    alone = _draw_steps(1234, row, "T")
    for batch in ["uuuTgg", "Tsu", "gggggT", "usTus"]:
        assert _draw_steps(1234, row, batch) == alone, batch
    assert len(set(alone)) > 3, "draws should vary from step to step"
    assert _draw_steps(1235, row, "T") != alone, "another seed must give another stream"


def test_seeded_draw_depends_on_step() -> None:
    row = _random_logits(1, seed=5, scale=0.5)
    tokens = {sample(row, [make_seq(n, temperature=1.0, seed=7)]).token_ids[0] for n in range(20)}
    assert len(tokens) > 3


def test_unseeded_rows_follow_the_shared_generator() -> None:
    logits = _random_logits(64, seed=6, scale=0.5)
    seqs = [make_seq(temperature=1.0) for _ in range(64)]
    first = sample(logits, seqs, torch.Generator().manual_seed(11)).token_ids
    again = sample(logits, seqs, torch.Generator().manual_seed(11)).token_ids
    other = sample(logits, seqs, torch.Generator().manual_seed(12)).token_ids
    assert first == again
    assert first != other


def test_greedy_rows_never_build_request_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("a greedy row drew from a request generator")

    monkeypatch.setattr(sampler_module, "request_generator", forbidden)
    logits = _random_logits(3, seed=7)
    seqs = [make_seq(seed=1), make_seq(seed=2, logprobs=0), make_seq(temperature=1.0)]
    result = sample(logits, seqs, torch.Generator().manual_seed(0))
    assert result.token_ids[:2] == logits[:2].argmax(dim=-1).tolist()


PROBS = [0.5, 0.3, 0.15, 0.05]
NUM_DRAWS = 20_000
TOLERANCE = 0.015  # ~4 standard deviations at 20k draws


def _draw_many(seed_per_row: bool = False, **sampling: object) -> list[float]:
    logits = logits_for_probs(PROBS).expand(NUM_DRAWS if not seed_per_row else 4000, -1)
    seqs = [make_seq(seed=i if seed_per_row else None, **sampling) for i in range(logits.shape[0])]
    tokens = sample(logits.contiguous(), seqs, torch.Generator().manual_seed(2024)).token_ids
    return frequencies(tokens, len(PROBS))


def test_sampling_follows_the_softmax_distribution() -> None:
    assert _draw_many(temperature=1.0) == pytest.approx(PROBS, abs=TOLERANCE)


def test_seeded_rows_follow_the_softmax_distribution() -> None:
    # 4000 draws, one per seed: looser bound (~4 standard deviations).
    assert _draw_many(seed_per_row=True, temperature=1.0) == pytest.approx(PROBS, abs=0.035)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_reshapes_the_distribution(temperature: float) -> None:
    expected = torch.softmax(logits_for_probs(PROBS) / temperature, dim=-1).tolist()
    assert _draw_many(temperature=temperature) == pytest.approx(expected, abs=TOLERANCE)


def test_lower_temperature_concentrates_on_the_top_token() -> None:
    assert _draw_many(temperature=0.5)[0] > _draw_many(temperature=1.0)[0] + 0.1
    assert _draw_many(temperature=2.0)[0] < _draw_many(temperature=1.0)[0] - 0.05


def test_top_p_masks_the_tail() -> None:
    # Mass before token 2 is 0.8 >= 0.75: tokens 2 and 3 go, 0 and 1 are renormalised.
    freqs = _draw_many(temperature=1.0, top_p=0.75)
    assert freqs[2] == 0.0 and freqs[3] == 0.0
    assert freqs[:2] == pytest.approx([0.5 / 0.8, 0.3 / 0.8], abs=TOLERANCE)


def test_top_k_masks_all_but_the_k_most_likely() -> None:
    freqs = _draw_many(temperature=1.0, top_k=2)
    assert freqs[2] == 0.0 and freqs[3] == 0.0
    assert freqs[:2] == pytest.approx([0.5 / 0.8, 0.3 / 0.8], abs=TOLERANCE)


def test_top_p_applies_after_top_k() -> None:
    # After top-k=3 the mass before token 2 is 0.8/0.95 = 0.84 >= 0.83; without top-k it is 0.8.
    assert _draw_many(temperature=1.0, top_k=3, top_p=0.83)[2] == 0.0
    assert _draw_many(temperature=1.0, top_p=0.83)[2] > 0.1
