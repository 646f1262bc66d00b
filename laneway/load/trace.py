"""Seeded open-loop traces: Poisson arrivals per endpoint, prompt and output lengths.

The same seed gives the same trace, so several policies can be replayed against exactly
the same arrivals in one benchmark run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointLoad:
    endpoint: str
    rate_per_s: float
    prompt_tokens: tuple[int, int]  # inclusive range, uniform
    output_tokens: tuple[int, int]
    shared_prefix_tokens: int = 0  # a common prefix (a system prompt) on every request


@dataclass(frozen=True)
class Arrival:
    at_s: float
    endpoint: str
    prompt: str
    max_tokens: int


def make_trace(loads: list[EndpointLoad], duration_s: float, seed: int, chars_per_token: int = 1) -> list[Arrival]:
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    for load in loads:
        prefix = _text(random.Random(f"{seed}-{load.endpoint}-prefix"), load.shared_prefix_tokens * chars_per_token)
        t = rng.expovariate(load.rate_per_s) if load.rate_per_s > 0 else duration_s
        while t < duration_s:
            n_prompt = rng.randint(*load.prompt_tokens) * chars_per_token
            body = _text(rng, max(1, n_prompt - len(prefix)))
            arrivals.append(Arrival(t, load.endpoint, prefix + body, rng.randint(*load.output_tokens)))
            t += rng.expovariate(load.rate_per_s)
    return sorted(arrivals, key=lambda a: a.at_s)


_WORDS = ("lane", "batch", "token", "queue", "window", "budget", "worker", "cache", "stream", "label",
          "ticket", "draft", "reply", "code", "review", "night", "summary", "tag")


def _text(rng: random.Random, num_chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < num_chars:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:num_chars]
