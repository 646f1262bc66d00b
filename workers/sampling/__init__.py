"""Token sampling: greedy, temperature, top-k, top-p, per-request seeds, logprobs."""

from workers.sampling.result import SampleResult, TokenLogprobs
from workers.sampling.sampler import sample

__all__ = ["SampleResult", "TokenLogprobs", "sample"]
