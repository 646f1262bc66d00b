"""A worker whose model pass fails on demand: the real engine, loop, servicer and process
entry (`workers.main.serve`) around a runner that raises once a request whose id starts
with POISON is scheduled. In-process via `build()`, or as a process:

    python -m tests.workers.faulty_worker --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import torch

from telemetry import TracingConfig
from workers.built_engine import BuiltEngine
from workers.config import WorkerConfig
from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.engine import Engine
from workers.engine.engine_loop import EngineLoop
from workers.engine.linear_cost import LinearCost
from workers.engine.runner import RunnerStats
from workers.engine.scheduler import Scheduler
from workers.engine.scheduler_output import SchedulerOutput
from workers.models.config import PRESETS
from workers.sampling.sampler import sample
from workers.sim.sim_runner import SimRunner
from workers.tokenizer import ByteTokenizer

POISON = "poison"
MAX_MODEL_LEN = 1024
STEP_S = 0.005  # each pass sleeps this long: streams stay live for the test to act on


class InjectedFault(RuntimeError):
    """What a kernel or out-of-memory error looks like to the engine: any exception from a pass."""


class FaultyRunner:
    def __init__(self, vocab_size: int) -> None:
        self._inner = SimRunner(LinearCost(fixed_s=STEP_S), vocab_size)

    @property
    def stats(self) -> RunnerStats:
        return self._inner.stats

    def run(self, out: SchedulerOutput) -> torch.Tensor:
        poisoned = [s.seq.seq_id for s in out.scheduled if s.seq.seq_id.startswith(POISON)]
        if poisoned:
            raise InjectedFault(f"injected fault in the pass that scheduled {poisoned[0]}")
        return self._inner.run(out)


def build() -> BuiltEngine:
    config = PRESETS["tiny"]
    sched_cfg = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=256, max_model_len=MAX_MODEL_LEN)
    scheduler = Scheduler(sched_cfg, BlockManager(512, 4, enable_prefix_caching=True))
    engine = Engine(scheduler, FaultyRunner(config.vocab_size), sample, ByteTokenizer(config.vocab_size))
    return BuiltEngine(EngineLoop(engine), engine.tokenizer, config, sched_cfg)


def config(port: int, drain_delay_s: float = 0.0) -> WorkerConfig:
    return WorkerConfig(model="faulty", port=port, drain_delay_s=drain_delay_s,
                        tracing=TracingConfig("laneway-worker", is_enabled=False))


def main() -> int:
    from workers.main import serve

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--drain-delay", type=float, default=0.0)
    a = p.parse_args()
    return asyncio.run(serve(config(a.port, a.drain_delay), build()))


if __name__ == "__main__":
    sys.exit(main())
