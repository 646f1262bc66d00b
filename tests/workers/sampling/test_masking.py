from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.sampling.masking import apply_top_k_top_p


def _reference_kept(row: list[float], k: int, p: float) -> set[int]:
    """Slow, obvious top-k then top-p on one row."""
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))
    if 0 < k < len(row):
        order = order[:k]
    if p >= 1.0:
        return set(order)
    weights = [math.exp(row[i] - row[order[0]]) for i in order]
    total = sum(weights)
    kept, mass = [], 0.0
    for i, w in zip(order, weights):
        if kept and mass >= p:
            break
        kept.append(i)
        mass += w / total
    return set(kept)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    ks=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    ps=st.lists(st.sampled_from([0.05, 0.3, 0.5, 0.71, 0.9, 0.99, 1.0]), min_size=6, max_size=6),
)
def test_matches_reference(seed: int, ks: list[int], ps: list[float]) -> None:
    num_rows, vocab = len(ks), 10
    logits = torch.randn(num_rows, vocab, generator=torch.Generator().manual_seed(seed)) * 2
    top_p = torch.tensor(ps[:num_rows])
    masked = apply_top_k_top_p(logits, torch.tensor(ks), top_p)
    for i in range(num_rows):
        kept = {j for j in range(vocab) if masked[i, j] != float("-inf")}
        assert kept == _reference_kept(logits[i].tolist(), ks[i], float(top_p[i])), (i, ks[i], ps[i])
        assert torch.equal(masked[i, sorted(kept)], logits[i, sorted(kept)]), "kept logits change"


def test_off_rows_are_untouched() -> None:
    logits = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    masked = apply_top_k_top_p(logits, torch.tensor([0, 8, 20]), torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(masked, logits)


def test_a_row_always_keeps_its_top_token() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    masked = apply_top_k_top_p(logits, torch.tensor([0]), torch.tensor([0.0]))
    assert masked[0].tolist() == [float("-inf"), 3.0, float("-inf")]
