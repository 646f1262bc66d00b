"""A real engine (scheduler, block manager, model runner, sampler) over a real model, for tests.

On CPU by default; LANEWAY_TEST_DEVICE=cuda (scripts/gpu_check.sh) runs the same tests with
the model, KV pool and Triton attention on the GPU, against the same CPU references.
"""

from __future__ import annotations

import os

import torch

from workers.engine.block_manager import BlockManager
from workers.engine.config import CacheRuntime, SchedulerConfig
from workers.engine.engine import Engine
from workers.engine.model_runner import ModelRunner
from workers.engine.outputs import RequestOutput
from workers.engine.scheduler import Scheduler
from workers.engine.sequence import LanePolicy, SamplingParams, Sequence
from workers.models.loader import load_model
from workers.sampling.sampler import sample


def make_engine(spec: str = "tiny", *, num_blocks: int = 256, block_size: int = 4, budget: int = 7,
                max_num_seqs: int = 16, prefix_caching: bool = True, max_model_len: int = 256) -> Engine:
    device = torch.device(os.environ.get("LANEWAY_TEST_DEVICE", "cpu"))
    model, config, tokenizer = load_model(spec, dtype="float32", device=device)
    runtime = CacheRuntime(num_blocks=num_blocks, block_size=block_size)
    runner = ModelRunner(model, config, runtime, torch.float32, device)
    sched = Scheduler(SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=budget,
                                      max_model_len=max_model_len),
                      BlockManager(num_blocks, block_size, prefix_caching))
    return Engine(sched, runner, sample, tokenizer)


def greedy_seq(seq_id: str, prompt: list[int], max_tokens: int, priority: int = 0, preemptible: bool = True,
               lane: str = "default") -> Sequence:
    return Sequence(seq_id, list(prompt), SamplingParams(max_tokens=max_tokens, ignore_eos=True),
                    LanePolicy(name=lane, priority=priority, preemptible=preemptible))


def run_with_arrivals(engine: Engine, arrivals: dict[int, list[Sequence]], max_steps: int = 5000
                      ) -> dict[str, list[int]]:
    """Add arrivals[step] before each step; run until idle; return output token ids per seq.
    Checks block integrity after every step."""
    tokens: dict[str, list[int]] = {}
    live: dict[str, Sequence] = {}
    for step in range(max_steps):
        for seq in arrivals.get(step, []):
            engine.add(seq)
            live[seq.seq_id] = seq
            tokens[seq.seq_id] = []
        if not engine.has_work() and step > max(arrivals, default=0):
            break
        outs: list[RequestOutput] = engine.step() if engine.has_work() else []
        for o in outs:
            tokens[o.seq_id].extend(o.token_ids)
            if o.is_finished:
                live.pop(o.seq_id, None)
        engine.scheduler.check_integrity()
    assert not engine.has_work(), "engine did not finish"
    return tokens
