from __future__ import annotations

import pytest
import torch

from tests.workers.sampling.factories import make_seq
from workers.sampling import sample

VOCAB = 30


def test_logprobs_are_log_softmax_of_the_raw_logits() -> None:
    logits = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(0)) * 3
    seqs = [
        make_seq(logprobs=3),
        make_seq(temperature=0.7, top_k=5, logprobs=2),  # knobs do not change reported logprobs
        make_seq(logprobs=None),
        make_seq(temperature=1.5, seed=3, logprobs=0),
    ]
    result = sample(logits, seqs, torch.Generator().manual_seed(0))
    expected = torch.log_softmax(logits, dim=-1)
    for i, k in [(0, 3), (1, 2), (3, 0)]:
        entry = result.logprobs[i]
        assert entry is not None
        sampled_logprob, alternatives = entry
        assert sampled_logprob == pytest.approx(expected[i, result.token_ids[i]].item(), abs=1e-5)
        values, ids = expected[i].topk(k) if k else (torch.empty(0), torch.empty(0, dtype=torch.long))
        assert [t for t, _ in alternatives] == ids.tolist()
        assert [v for _, v in alternatives] == pytest.approx(values.tolist(), abs=1e-5)
    assert result.logprobs[2] is None


def test_greedy_sampled_token_is_the_best_alternative() -> None:
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(1))
    result = sample(logits, [make_seq(logprobs=1), make_seq(logprobs=1)])
    for token, entry in zip(result.token_ids, result.logprobs):
        assert entry is not None
        assert entry[1][0][0] == token and entry[1][0][1] == pytest.approx(entry[0])


def test_more_alternatives_than_vocabulary_returns_the_whole_vocabulary() -> None:
    logits = torch.randn(1, 4, generator=torch.Generator().manual_seed(2))
    entry = sample(logits, [make_seq(logprobs=10)]).logprobs[0]
    assert entry is not None and sorted(t for t, _ in entry[1]) == [0, 1, 2, 3]
