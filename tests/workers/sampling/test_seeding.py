from __future__ import annotations

import torch

from workers.sampling.seeding import derive_seed, request_generator


def test_derived_seeds_are_distinct_for_nearby_pairs() -> None:
    seeds = {derive_seed(seed, step) for seed in range(-20, 20) for step in range(50)}
    assert len(seeds) == 40 * 50
    assert all(0 <= s < 2**64 for s in seeds)


def test_seed_and_step_are_not_interchangeable() -> None:
    assert derive_seed(1, 2) != derive_seed(2, 1)
    assert derive_seed(0, 1) != derive_seed(1, 0)


def test_request_generator_is_deterministic() -> None:
    a = torch.rand(5, generator=request_generator(42, 3, torch.device("cpu")))
    b = torch.rand(5, generator=request_generator(42, 3, torch.device("cpu")))
    c = torch.rand(5, generator=request_generator(42, 4, torch.device("cpu")))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
