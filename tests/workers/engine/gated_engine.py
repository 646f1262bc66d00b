"""A real engine (scheduler, block manager, sampler, byte tokenizer) around a model-free runner
whose passes wait for the test: what runs on the engine thread, and when, is the test's to say."""

from __future__ import annotations

import threading

import torch

from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.engine import Engine
from workers.engine.linear_cost import LinearCost
from workers.engine.runner import RunnerStats
from workers.engine.scheduler import Scheduler
from workers.engine.scheduler_output import SchedulerOutput
from workers.models.config import PRESETS
from workers.sampling.sampler import sample
from workers.sim.sim_runner import SimRunner
from workers.tokenizer import ByteTokenizer

VOCAB_SIZE = PRESETS["tiny"].vocab_size


class GatedRunner:
    """The engine's Runner protocol: SimRunner at zero cost (letters only, never eos), each pass
    held until `gate` is set. A gate never opened fails the pass instead of hanging the test."""

    def __init__(self) -> None:
        self._inner = SimRunner(LinearCost(fixed_s=0.0), VOCAB_SIZE, sleep=lambda _s: None)
        self.gate = threading.Event()
        self._allowed = threading.Semaphore(0)  # single passes let through while the gate is shut
        self.passes = 0

    @property
    def stats(self) -> RunnerStats:
        return self._inner.stats

    def allow(self, passes: int) -> None:
        """Let this many more passes run with the gate still shut."""
        self._allowed.release(passes)

    def run(self, out: SchedulerOutput) -> torch.Tensor:
        for _ in range(600):  # 60 s
            if self.gate.is_set() or self._allowed.acquire(timeout=0.1):
                break
        else:
            raise TimeoutError("the test never opened the runner's gate")
        self.passes += 1
        return self._inner.run(out)


def make_gated_engine(*, num_blocks: int = 64, block_size: int = 4, max_model_len: int = 128,
                      max_num_seqs: int = 8) -> tuple[Engine, GatedRunner]:
    runner = GatedRunner()
    scheduler = Scheduler(SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=64,
                                          max_model_len=max_model_len),
                          BlockManager(num_blocks, block_size, enable_prefix_caching=True))
    return Engine(scheduler, runner, sample, ByteTokenizer(VOCAB_SIZE)), runner
