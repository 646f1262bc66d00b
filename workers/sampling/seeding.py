"""Per-request random streams: a seeded request draws from its own generator.

The generator for a draw is seeded from (request seed, output step) only, so the
token a seeded request gets never depends on its row, on the other requests in the
batch, or on how many draws the shared generator has made. Preemption by recompute
keeps the output tokens, so the step, and hence the stream, resumes where it was.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    # A strong 64-bit mixer: nearby (seed, step) pairs get unrelated generator seeds.
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(seed: int, step: int) -> int:
    """A 64-bit generator seed for draw number `step` of a request seeded with `seed`."""
    assert step >= 0, f"step must be non-negative, got {step}"
    return _splitmix64(_splitmix64(seed & _MASK64) ^ step)


def request_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, step))
    return generator
