"""What the engine calls on a model runner: one forward pass per step, and its counters.

Two runners match this structurally: ModelRunner (workers/engine/model_runner.py, a real
model over the paged KV pool) and SimRunner (workers/sim/sim_runner.py, a cost model's
time and logits that only pick letters). torch appears in annotations only, so the engine
and its loop load without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from workers.engine.scheduler_output import SchedulerOutput

if TYPE_CHECKING:
    import torch


@dataclass
class RunnerStats:
    num_steps: int = 0
    num_computed_tokens: int = 0  # tokens forwarded; prefix-cache hits never show up here
    num_sampled: int = 0  # logits rows returned


class Runner(Protocol):
    @property
    def stats(self) -> RunnerStats:
        """Counters since start (benchmarks read them to check what a step really computed)."""
        ...

    def run(self, out: SchedulerOutput) -> torch.Tensor:
        """Float32 logits (N + P, V): one row per scheduled seq with needs_sample, in scheduling
        order, then one row per position of out.prompt_logit_spans(), in order (P is 0 unless
        a request asks for prompt logprobs).

        Never changes a Sequence: advancing num_computed_tokens is the engine's postprocess."""
        ...
