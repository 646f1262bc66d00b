"""Drive a ModelRunner the way the engine will: a fake block allocator and chunked steps."""

from __future__ import annotations

import random

import torch

from workers.engine.config import CacheRuntime
from workers.engine.model_runner import ModelRunner, sampled_seqs
from workers.engine.scheduler_output import ScheduledSeq, SchedulerOutput
from workers.engine.sequence import Sequence
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM


class FakeAllocator:
    """Hands out blocks in shuffled order so no sequence's blocks are contiguous."""

    def __init__(self, num_blocks: int, block_size: int, seed: int = 0) -> None:
        self.block_size = block_size
        self.free = list(range(num_blocks))
        random.Random(seed).shuffle(self.free)

    def cover(self, seq: Sequence, num_tokens: int) -> None:
        while len(seq.block_table) * self.block_size < num_tokens:
            seq.block_table.append(self.free.pop())


def make_runner(
    model: LlamaForCausalLM, config: ModelConfig, num_blocks: int = 64, block_size: int = 4
) -> tuple[ModelRunner, FakeAllocator]:
    runtime = CacheRuntime(num_blocks=num_blocks, block_size=block_size)
    runner = ModelRunner(model, config, runtime, getattr(torch, config.dtype), "cpu")
    return runner, FakeAllocator(num_blocks, block_size)


def run_step(runner: ModelRunner, alloc: FakeAllocator, plan: list[tuple[Sequence, int]]) -> dict[str, torch.Tensor]:
    """One step; returns {seq_id: logits row} for the sampled seqs and advances the counters."""
    out = SchedulerOutput([ScheduledSeq(seq, n) for seq, n in plan])
    for s in out.scheduled:
        alloc.cover(s.seq, s.end)
    logits = runner.run(out)
    row_seqs = sampled_seqs(out)  # before advancing: needs_sample reads num_computed_tokens
    assert logits.dtype == torch.float32 and logits.shape[0] == len(row_seqs)
    for s in out.scheduled:  # the engine's postprocess
        s.seq.num_computed_tokens = s.end
    return {seq.seq_id: row for seq, row in zip(row_seqs, logits)}


def run_chunked(
    runner: ModelRunner, alloc: FakeAllocator, prompts: list[list[int]], chunk: int, num_decode: int
) -> tuple[list[Sequence], dict[str, list[torch.Tensor]]]:
    """Seq i arrives at step i; prompts prefill `chunk` tokens per step beside other seqs'
    decodes, then each seq decodes `num_decode` tokens (its greedy choice) one per step."""
    seqs = [Sequence(f"s{i}", list(p)) for i, p in enumerate(prompts)]
    rows: dict[str, list[torch.Tensor]] = {s.seq_id: [] for s in seqs}
    step = 0
    while True:
        plan = [
            (seq, min(chunk, seq.num_uncomputed_tokens))
            for i, seq in enumerate(seqs)
            if i <= step and len(rows[seq.seq_id]) <= num_decode  # one sample per prefill + each decode
        ]
        if not plan:
            return seqs, rows
        for seq_id, row in run_step(runner, alloc, plan).items():
            seq = next(s for s in seqs if s.seq_id == seq_id)
            rows[seq_id].append(row)
            if seq.num_output_tokens < num_decode:
                seq.append_token(int(row.argmax()))
        step += 1
