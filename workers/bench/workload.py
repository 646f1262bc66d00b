"""A seeded mixed offline workload: many requests of varied prompt and output lengths."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    prompt: list[int]
    output_len: int  # tokens the client asked for; generation always runs to it (no eos stop)


def mixed_workload(num_requests: int, prompt_lens: tuple[int, int], output_lens: tuple[int, int],
                   vocab_size: int, seed: int = 0) -> list[Request]:
    """Lengths uniform in the inclusive ranges; prompt ids drawn from the byte range so the
    presets' byte tokenizer could print them."""
    rng = random.Random(seed)
    vocab = min(vocab_size, 256)
    return [
        Request(prompt=[rng.randrange(vocab) for _ in range(rng.randint(*prompt_lens))],
                output_len=rng.randint(*output_lens))
        for _ in range(num_requests)
    ]
