"""Stands in for ModelRunner: the engine's Runner protocol (workers/engine/runner.py), with no model.

It asks the cost model how long this pass would take on the simulated hardware, sleeps
that long (a sleeping engine thread costs no CPU, so thousands of streams are cheap), and
returns logits that let the real sampler pick lowercase letters only: never eos, so the
lengths requested are the lengths served. The tokens are meaningless; the timing is the
point. The scheduler, block manager, engine loop and gRPC service around it are real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from workers.engine.runner import RunnerStats
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.step_shape import StepCost, shape_of

_LETTERS = range(ord("a"), ord("z") + 1)  # byte-tokenizer ids of 'a'..'z'


@dataclass
class SimRunnerStats(RunnerStats):
    simulated_s: float = 0.0  # sum of predicted pass times


class SimRunner:
    def __init__(self, cost: StepCost, vocab_size: int, sleep: Callable[[float], None] = time.sleep) -> None:
        assert vocab_size > max(_LETTERS), f"vocab_size {vocab_size} has no room for the letters"
        self.cost = cost
        self.sleep = sleep
        self._row = torch.full((vocab_size,), float("-inf"))  # (V,)
        self._row[list(_LETTERS)] = 0.0
        self.stats = SimRunnerStats()

    def run(self, out: SchedulerOutput) -> torch.Tensor:
        """Float32 logits (N + P, V) as the Runner protocol says, after the predicted time."""
        assert not out.is_empty, "model runner called with nothing scheduled"
        shape = shape_of(out)
        seconds = self.cost.step_time(shape)
        self.sleep(seconds)
        num_sampled = sum(1 for s in out.scheduled if s.needs_sample)
        self.stats.num_steps += 1
        self.stats.num_computed_tokens += shape.num_tokens
        self.stats.num_sampled += num_sampled
        self.stats.simulated_s += seconds
        num_rows = num_sampled + out.num_prompt_logit_rows()
        return self._row.repeat(num_rows, 1)  # (N + P, V); a copy: samplers may mask in place
