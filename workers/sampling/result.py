"""What the sampler hands back to postprocessing: one token per row, logprobs where asked."""

from __future__ import annotations

from dataclasses import dataclass

# (logprob of the sampled token, [(token_id, logprob), ...] top-k alternatives, best first)
TokenLogprobs = tuple[float, list[tuple[int, float]]]


@dataclass(frozen=True)
class SampleResult:
    token_ids: list[int]  # token_ids[i] is the next token of seqs[i]
    logprobs: list[TokenLogprobs | None]  # None where the request asked for no logprobs

    def __post_init__(self) -> None:
        assert len(self.token_ids) == len(self.logprobs), (
            f"{len(self.token_ids)} tokens but {len(self.logprobs)} logprob entries"
        )
