"""The warm-up a worker runs before it reports SERVING.

Two jobs in one sweep of real engine steps on throw-away prompts:
- every kind of pass runs once before a request depends on it (first-call allocations,
  kernel builds and compiles happen here, where a failure is a start-up failure);
- the steps' shapes and wall times are the anchor rows of the step-time model
  (online_cost.py): prefill chunks of several lengths and decode batches of several sizes
  and contexts, so the fit can tell its terms apart.

Pure Python over the Engine: the engine's runner does the torch work.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from workers.engine.cost_fit import FitError, MeasuredStep
from workers.engine.engine import Engine, StepStats
from workers.engine.linear_cost import LinearCost
from workers.engine.online_cost import OnlineStepCost
from workers.engine.sequence import SamplingParams, Sequence
from workers.engine.step_shape import StepShape

log = logging.getLogger("laneway.worker")

PREFILL_LENGTHS = (16, 64, 256)
DECODE_POINTS = ((1, 32), (4, 32), (16, 32), (4, 160))  # (batch size, context)
NUM_DECODE_TOKENS = 6
REPEATS = 2


def warm_up(engine: Engine, vocab_size: int, seed: int = 0) -> list[MeasuredStep]:
    """Run the sweep to completion; returns one row per point of the sweep (the first,
    throw-away pass excluded). The engine must be idle; it is idle again afterwards.

    Each point keeps the median of its steps within a repeat and the best repeat: on a
    shared machine a disturbance only ever makes a step slower, so the best is the
    engine's own cost (the online refits then follow the load the machine really has)."""
    if engine.has_work():
        raise RuntimeError("warm-up needs an idle engine")
    config = engine.scheduler.config
    rng = random.Random(seed)
    steps: list[MeasuredStep] = []
    best: dict[str, MeasuredStep] = {}
    previous = engine.on_step

    def record(stats: StepStats) -> None:
        steps.append(MeasuredStep(stats.shape, stats.duration_s))

    def measure(point: str, seqs: Iterable[Sequence], keep: Callable[[StepShape], bool]) -> None:
        steps.clear()
        _run(engine, seqs)
        kept = sorted((row for row in steps if keep(row.shape)), key=lambda row: row.seconds)
        if kept:
            median = kept[len(kept) // 2]
            if point not in best or median.seconds < best[point].seconds:
                best[point] = median

    try:
        _run(engine, [_seq(rng, vocab_size, 8, 2, "warm-up-first")])  # one-off allocations: not a row
        engine.on_step = record
        longest = engine.scheduler.max_model_len - NUM_DECODE_TOKENS - 2
        for r in range(REPEATS):
            for length in PREFILL_LENGTHS:
                if length <= longest:
                    measure(f"p{length}", [_seq(rng, vocab_size, length, 1, f"warm-up-{r}-p{length}")],
                            keep=_is_prefill)
            for batch, context in DECODE_POINTS:
                if context <= longest:
                    b = min(batch, config.max_num_seqs)
                    point = f"d{b}x{context}"
                    measure(point, [_seq(rng, vocab_size, context, NUM_DECODE_TOKENS, f"warm-up-{r}-{point}-{i}")
                                    for i in range(b)],
                            keep=functools.partial(_is_decode_of, b))
    finally:
        engine.on_step = previous
    return list(best.values())


def start_step_cost(engine: Engine, vocab_size: int, spec: str) -> OnlineStepCost | None:
    """Warm the engine up and give its scheduler a step-time model (`--step-cost`):
    'auto' fits one to the warm-up's steps; a path loads a saved LinearCost (`laneway
    calibrate --out`, or its `cost` object) and keeps the warm-up's steps as anchors for
    refits; 'off' plans by tokens only. A fit that fails falls back to tokens, loudly."""
    rows = warm_up(engine, vocab_size)
    if spec == "off":
        return None
    try:
        if spec == "auto":
            model = OnlineStepCost.fitted(rows, source=f"warm-up, {len(rows)} steps")
        else:
            model = OnlineStepCost(_load_cost(Path(spec)), anchors=rows)
    except FitError as exc:
        log.warning("no step-time model (%s): steps are sized by tokens only; latency targets are not "
                    "enforced by time", exc)
        return None
    engine.scheduler.use_cost_model(model)
    log.info("step-time model: %s", model.describe())
    return model


def _load_cost(path: Path) -> LinearCost:
    try:
        data = json.loads(path.read_text())
        return LinearCost.from_json(data.get("cost", data))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemExit(f"--step-cost {path}: not a readable cost model ({exc})") from None


def _is_prefill(shape: StepShape) -> bool:
    return shape.num_tokens > 1


def _is_decode_of(batch: int, shape: StepShape) -> bool:
    return shape.num_seqs == shape.num_tokens == batch


def _seq(rng: random.Random, vocab_size: int, length: int, max_tokens: int, seq_id: str) -> Sequence:
    # Random prompts: a prefix-cache hit would skip the very work being measured.
    return Sequence(seq_id, [rng.randrange(vocab_size) for _ in range(length)],
                    SamplingParams(max_tokens=max_tokens, ignore_eos=True))


def _run(engine: Engine, seqs: Iterable[Sequence]) -> None:
    for seq in seqs:
        engine.add(seq)
    while engine.has_work():
        engine.step()
