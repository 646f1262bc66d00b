"""`laneway calibrate --measure`: time real forward passes of the real engine, in-process.

Builds the engine with `workers.build.build_engine` (the same model, KV pool, scheduler
and runner a worker serves) and times every pass around `ModelRunner.run`, the part the
simulator replaces, with its StepShape. Two kinds of rows:

- prefill: one prompt of each length, chunked under the token budget as in serving;
- decode: B prompts of `context` tokens are prefilled (not recorded), then pure decode
  steps, pooled into their median.

Beside each pass it records the rest of its engine step (schedule, sample, detokenize,
postprocess: `Engine.on_step`'s duration minus the pass), the host overhead a simulated
worker pays for real and the virtual worker must add (host_overhead.py).

The whole plan runs `repeats` times. Each shape keeps the median of its samples within a
pass and the best of those over passes: on a shared machine every disturbance from
another process only ever makes a pass slower, so the best pass is the engine's own cost
(the real engine on a loaded machine runs slower than this by the load; docs/capacity.md).
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.build import build_engine
from workers.config import WorkerConfig
from workers.engine.config import CacheConfig, SchedulerConfig
from workers.engine.cost_fit import MeasuredStep
from workers.engine.engine import StepStats
from workers.engine.runner import Runner, RunnerStats
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import SamplingParams, Sequence
from workers.engine.step_shape import StepShape, shape_of

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class MeasurePlan:
    model: str = "small"
    decode_points: tuple[tuple[int, int], ...] = ((1, 32), (4, 32), (16, 32), (32, 32), (1, 384), (8, 384))
    prefill_lengths: tuple[int, ...] = (128, 512, 1024)
    num_decode_steps: int = 8
    repeats: int = 2
    max_num_batched_tokens: int = 512
    num_threads: int = 1
    kv_cache_memory_bytes: int = 512 * 10**6
    seed: int = 0


@dataclass(frozen=True)
class Measurement:
    forward: list[MeasuredStep]  # the model's pass
    host: list[MeasuredStep]  # the rest of the same engine steps


class _TimingRunner:
    """Forwards to the real runner; records each pass's shape and wall time, and (through
    Engine.on_step) the whole step's, so the host share is step minus pass."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.passes: list[MeasuredStep] = []
        self.steps: list[float] = []

    @property
    def stats(self) -> RunnerStats:
        return self.runner.stats

    def on_step(self, stats: StepStats) -> None:
        self.steps.append(stats.duration_s)

    def clear(self) -> None:
        self.passes.clear()
        self.steps.clear()

    def host(self) -> list[MeasuredStep]:
        assert len(self.steps) == len(self.passes), "a step without its pass"
        return [MeasuredStep(p.shape, max(1e-6, t - p.seconds)) for p, t in zip(self.passes, self.steps)]

    def run(self, out: SchedulerOutput) -> torch.Tensor:
        shape = shape_of(out)
        start = time.perf_counter()
        logits = self.runner.run(out)
        self.passes.append(MeasuredStep(shape, time.perf_counter() - start))
        return logits


def measure(plan: MeasurePlan, progress: Callable[[str], None] = print) -> Measurement:
    longest = max([*plan.prefill_lengths, *(c for _, c in plan.decode_points)]) + plan.num_decode_steps + 8
    cfg = WorkerConfig(model=plan.model, num_threads=plan.num_threads,
                       scheduler=SchedulerConfig(max_num_seqs=max(b for b, _ in plan.decode_points),
                                                 max_num_batched_tokens=plan.max_num_batched_tokens,
                                                 max_model_len=max(2048, longest)),
                       cache=CacheConfig(kv_cache_memory_bytes=plan.kv_cache_memory_bytes,
                                         enable_prefix_caching=False))  # random prompts; a hit skips work
    engine = build_engine(cfg).loop.engine
    timing = _TimingRunner(engine.runner)
    engine.runner = timing
    engine.on_step = timing.on_step
    rng = random.Random(plan.seed)
    samples: dict[tuple[int, int, int], dict[int, list[MeasuredStep]]] = defaultdict(lambda: defaultdict(list))
    host: dict[tuple[int, int, int], dict[int, list[MeasuredStep]]] = defaultdict(lambda: defaultdict(list))
    _run(engine, [_seq(rng, 64, 4, "warm-up")])  # first passes pay one-off allocations
    for r in range(plan.repeats):
        for length in plan.prefill_lengths:
            timing.clear()
            _run(engine, [_seq(rng, length, 1, f"p{r}-{length}")])
            for p, h in zip(timing.passes, timing.host()):
                if p.shape.num_tokens > 1:
                    samples[(1, p.shape.num_tokens, p.shape.kv_tokens_read)][r].append(p)
                    host[(1, p.shape.num_tokens, p.shape.kv_tokens_read)][r].append(h)
        for b, context in plan.decode_points:
            seqs = [_seq(rng, context, plan.num_decode_steps + 2, f"d{r}-{b}x{context}-{i}") for i in range(b)]
            for seq in seqs:
                engine.add(seq)
            while any(seq.num_output_tokens == 0 for seq in seqs):
                engine.step()
            timing.clear()
            _run(engine, [])
            is_decode = [p.shape.num_tokens == p.shape.num_seqs == b for p in timing.passes]
            decodes = [p for p, ok in zip(timing.passes, is_decode) if ok]
            samples[(b, b, context)][r] += decodes
            host[(b, b, context)][r] += [h for h, ok in zip(timing.host(), is_decode) if ok]
            if decodes:
                progress(f"  pass {r + 1}/{plan.repeats}: decode B={b:3d} context {context:5d}: "
                         f"{statistics.median(p.seconds for p in decodes) * 1e3:7.2f} ms")
    return Measurement(_best(samples), _best(host))


def _best(samples: dict[tuple[int, int, int], dict[int, list[MeasuredStep]]]) -> list[MeasuredStep]:
    return [min((_pooled(group) for group in by_pass.values() if group), key=lambda m: m.seconds)
            for by_pass in samples.values() if any(by_pass.values())]


def _seq(rng: random.Random, length: int, max_tokens: int, seq_id: str) -> Sequence:
    return Sequence(seq_id, [rng.randrange(256) for _ in range(length)],
                    SamplingParams(max_tokens=max_tokens, ignore_eos=True))


def _run(engine, seqs: list[Sequence]) -> None:
    for seq in seqs:
        engine.add(seq)
    while engine.has_work():
        engine.step()


def _pooled(passes: list[MeasuredStep]) -> MeasuredStep:
    n = len(passes)
    first = passes[0].shape
    shape = StepShape(first.num_seqs, first.num_tokens, round(sum(p.shape.kv_tokens_read for p in passes) / n),
                      round(sum(p.shape.attention_pairs for p in passes) / n))
    return MeasuredStep(shape, statistics.median(p.seconds for p in passes))
