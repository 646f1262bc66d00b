"""Expert sharing in a mixture-of-experts pass: the occupancy problem.

Each of T tokens picks k of E experts per layer. A batch reads each *distinct* expert's
weights once, so the expected number of experts read per layer is

    E * (1 - (1 - k/E) ** T)

(the chance a given expert is picked by nobody is (1 - k/E)^T, treating the k picks of a
token as independent). Seed 003: 384 experts, 8 per token, B=16 -> ~109 unique, not 128.
"""

from __future__ import annotations


def unique_experts(num_experts: int, experts_per_token: int, num_tokens: int) -> float:
    assert 0 < experts_per_token <= num_experts, f"{experts_per_token} of {num_experts} experts"
    assert num_tokens >= 0, f"num_tokens {num_tokens}"
    miss = 1.0 - experts_per_token / num_experts
    return num_experts * (1.0 - miss ** num_tokens)
