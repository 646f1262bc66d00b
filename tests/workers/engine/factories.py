"""Factories for engine tests: sequences, schedulers, and a step driver with no model."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.scheduler import Scheduler
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import LanePolicy, LatencyTargets, SamplingParams, Sequence
from workers.engine.step_shape import StepCost

INTERACTIVE = LanePolicy(name="interactive", priority=0, preemptible=False)
STREAMING = LanePolicy(name="streaming", priority=1, preemptible=False)
BULK = LanePolicy(name="bulk", priority=2, preemptible=True)

_ids = itertools.count()


def make_seq(
    seq_id: str | None = None,
    prompt_len: int = 8,
    *,
    token_ids: list[int] | None = None,
    max_tokens: int = 4,
    lane: LanePolicy = BULK,
    deadline: float | None = None,
    eos_token_id: int | None = None,
    ignore_eos: bool = False,
    stop_token_ids: tuple[int, ...] = (),
    targets: LatencyTargets = LatencyTargets(),
    tenant: str = "",
    tenant_weight: float = 1.0,
) -> Sequence:
    """A sequence whose default prompt is unique (no accidental prefix hits)."""
    seq_id = seq_id if seq_id is not None else f"seq-{next(_ids)}"
    if token_ids is None:
        base = 1000 * (zlib.crc32(seq_id.encode()) % 100_000)
        token_ids = [base + i for i in range(prompt_len)]
    sampling = SamplingParams(max_tokens=max_tokens, ignore_eos=ignore_eos, stop_token_ids=stop_token_ids)
    return Sequence(
        seq_id=seq_id,
        token_ids=list(token_ids),
        sampling=sampling,
        lane=lane,
        deadline=deadline,
        eos_token_id=eos_token_id,
        targets=targets,
        tenant=tenant,
        tenant_weight=tenant_weight,
    )


def make_scheduler(
    num_blocks: int = 16,
    block_size: int = 4,
    *,
    max_num_seqs: int = 4,
    max_num_batched_tokens: int = 16,
    max_model_len: int = 256,
    enable_prefix_caching: bool = True,
    cost: StepCost | None = None,
) -> Scheduler:
    config = SchedulerConfig(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=max_model_len,
    )
    return Scheduler(config, BlockManager(num_blocks, block_size, enable_prefix_caching), cost)


def fake_token(seq: Sequence, vocab_size: int = 50_000) -> int:
    """The fake model's next token: a function of the sequence and its length only, so a
    recomputed sequence samples exactly what it would have without preemption."""
    return zlib.crc32(f"{seq.seq_id}:{seq.num_tokens}".encode()) % vocab_size


@dataclass(frozen=True)
class Chunk:
    """A scheduled chunk as it was planned (ScheduledSeq reads the live seq, which moves)."""

    seq_id: str
    start: int
    num_new_tokens: int
    needs_sample: bool


@dataclass(frozen=True)
class StepResult:
    output: SchedulerOutput
    chunks: list[Chunk]
    changed: list[Sequence]

    @property
    def ids(self) -> list[str]:
        return [c.seq_id for c in self.chunks]


def step(scheduler: Scheduler, sample: Callable[[Sequence], int] = fake_token) -> StepResult:
    """One engine step without a model; checks integrity afterwards."""
    output = scheduler.schedule()
    scheduler.check_integrity()
    chunks = [Chunk(s.seq.seq_id, s.start, s.num_new_tokens, s.needs_sample) for s in output.scheduled]
    sampled = {s.seq.seq_id: sample(s.seq) for s in output.scheduled if s.needs_sample}
    changed = scheduler.postprocess(output, sampled)
    scheduler.check_integrity()
    return StepResult(output, chunks, changed)


def run_until_done(scheduler: Scheduler, max_steps: int = 1000) -> list[StepResult]:
    results = []
    while scheduler.has_unfinished:
        assert len(results) < max_steps, f"not done after {max_steps} steps"
        results.append(step(scheduler))
    return results
