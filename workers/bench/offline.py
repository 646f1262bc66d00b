"""Offline throughput of the Laneway engine: every request submitted at once, run to idle.

Continuous batching admits requests as KV blocks and the sequence cap allow and refills a
finished sequence's slot at the next step, so nobody waits for the longest request of a
batch. Useful tokens are the requested output tokens, the same count the baseline gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from workers.bench.setup import make_engine
from workers.bench.workload import Request
from workers.engine.engine import drain
from workers.engine.sequence import SamplingParams, Sequence
from workers.engine.tokenizer import Tokenizer
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM


@dataclass(frozen=True)
class ThroughputResult:
    seconds: float
    output_tokens: int  # requested (useful) output tokens
    prompt_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds


def laneway_offline(model: LlamaForCausalLM, config: ModelConfig, tokenizer: Tokenizer, requests: list[Request], *,
                    max_num_seqs: int, max_num_batched_tokens: int) -> ThroughputResult:
    longest = max(len(r.prompt) + r.output_len for r in requests)
    # A pool that holds max_num_seqs sequences of the longest request: what a worker sized
    # for this traffic would have; the scheduler may still preempt if it runs short.
    engine = make_engine(model, config, tokenizer, num_tokens=max_num_seqs * longest, max_num_seqs=max_num_seqs,
                         max_num_batched_tokens=max_num_batched_tokens)
    seqs = [
        Sequence(f"r{i}", list(r.prompt), SamplingParams(max_tokens=r.output_len, ignore_eos=True))
        for i, r in enumerate(requests)
    ]
    start = time.perf_counter()
    drain(engine, seqs)
    seconds = time.perf_counter() - start
    produced = sum(seq.num_output_tokens for seq in seqs)
    wanted = sum(r.output_len for r in requests)
    assert produced == wanted, f"engine produced {produced} output tokens, requests asked for {wanted}"
    return ThroughputResult(seconds, wanted, sum(len(r.prompt) for r in requests))
