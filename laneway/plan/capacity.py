"""Where the curve bends, plateaus and falls off; how many workers hold every budget.

- decode_curve: aggregate tokens/s against batch size from the cost model alone, at the
  workload's mean context: B / pass(B). The plateau is the smallest B within 10% of the
  best aggregate reachable before the KV cliff.
- kv_cliff_batch: how many sequences of the workload's mean final length the KV pool
  holds; past it the scheduler preempts and recomputes (seed 003, region 4).
- regions: the same question asked of the virtual worker (real scheduler, closed loop),
  so preemption and prefill show up: the four regions as the engine would live them.
- workers_needed: the chain's answer first (cheap; a lower bound, since it sees means),
  then the simulation at that count and upward until every endpoint holds its budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from lanes.policy import Policy
from laneway.load.budgets import verdict
from laneway.load.workload import Budget, Workload
from laneway.plan.chain import ChainResult, decode_pass, plan_chain
from laneway.plan.simulate import EngineShape, SimSummary, simulate
from laneway.plan.traffic import chain_mix
from workers.sim.presets import SimPreset
from workers.sim.virtual_worker import ClosedSource, SimRequest, VirtualWorker

PLATEAU_SHARE = 0.9


@dataclass(frozen=True)
class CurvePoint:
    batch_size: int
    pass_s: float
    aggregate_tps: float
    per_stream_tps: float


@dataclass(frozen=True)
class Curve:
    points: tuple[CurvePoint, ...]
    plateau_batch: int
    cliff_batch: int  # first batch size whose KV no longer fits

    @property
    def plateau(self) -> CurvePoint:
        return next(p for p in self.points if p.batch_size == self.plateau_batch)


def kv_cliff_batch(kv_capacity_tokens: int, mean_final_tokens: float) -> int:
    return int(kv_capacity_tokens // max(1.0, mean_final_tokens)) + 1


def decode_curve(preset: SimPreset, context: float, mean_final_tokens: float, kv_capacity_tokens: int,
                 max_batch: int = 1024) -> Curve:
    cliff = kv_cliff_batch(kv_capacity_tokens, mean_final_tokens)
    sizes = sorted({b for b in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
                    if b <= max_batch} | {max(1, cliff - 1)})
    pts = []
    for b in sizes:
        t = decode_pass(preset.engine_step_cost, b, context)
        pts.append(CurvePoint(b, t, b / t, 1.0 / t))
    usable = [p for p in pts if p.batch_size < cliff] or pts[:1]
    best = max(p.aggregate_tps for p in usable)
    plateau = next(p.batch_size for p in usable if p.aggregate_tps >= PLATEAU_SHARE * best)
    return Curve(tuple(pts), plateau, cliff)


@dataclass(frozen=True)
class RegionPoint:
    concurrency: int
    aggregate_tps: float  # output tokens/s over the run
    per_stream_tps: float
    ttft_p50_s: float | None
    num_preemptions: int
    mean_batch_size: float


def regions(preset: SimPreset, shape: EngineShape, prompt_tokens: int, output_tokens: int,
            concurrencies: list[int], horizon_s: float = 150.0, cached_share: float = 0.0,
            seed: int = 0) -> list[RegionPoint]:
    """Closed loop at each concurrency on the virtual worker: the seed's load test, simulated.

    Each user keeps a context of its own (`cached_share` of the prompt, e.g. a coding
    agent's repository and conversation) that the prefix cache can serve on its next turn
    while the cache has room: the seed's returning users. Lengths vary around the means
    (prompt +-25%, output +-50%) so users fall out of step as they would in a real test;
    throughput counts every token sampled in the last two thirds of the run (after the
    ramp), finished requests or not."""
    longest = round(prompt_tokens * 1.25) + round(output_tokens * 1.5)
    if longest > shape.max_model_len:
        raise ValueError(f"closed-loop requests reach {longest} tokens (prompt x1.25 + output x1.5), over "
                         f"max_model_len {shape.max_model_len}: raise --max-model-len")
    out = []
    for c in concurrencies:
        rng = random.Random(f"{seed}/{c}")

        def make(user: int, now: float, rng: random.Random = rng) -> SimRequest:
            context = round(prompt_tokens * cached_share)
            own = prompt_tokens - context
            fresh = rng.randint(max(1, round(own * 0.75)), round(own * 1.25))
            output = rng.randint(max(1, round(output_tokens * 0.5)), round(output_tokens * 1.5))
            key = f"user{user}" if context else None
            return SimRequest(now, "closed-loop", context + fresh, output, prefix_key=key, prefix_tokens=context,
                              user=user)

        config = replace(shape, max_num_seqs=max(shape.max_num_seqs, c)).config(preset)
        worker = VirtualWorker(preset.engine_step_cost, config)
        run = worker.run(ClosedSource(c, make, until_s=horizon_s), horizon_s=horizon_s)
        agg = run.tokens_per_s(horizon_s / 3, min(run.end_s, horizon_s))
        ttfts = sorted(o.ttft_s for o in run.outcomes if o.ttft_s is not None and o.request.at_s >= horizon_s / 3)
        out.append(RegionPoint(c, agg, agg / c, ttfts[len(ttfts) // 2] if ttfts else None, run.num_preemptions,
                               run.mean_batch_size))
    return out


@dataclass(frozen=True)
class WorkersAnswer:
    chain_workers: int | None  # None: no count up to the limit is stable in the chain
    sim_workers: int | None  # None: not found up to max_workers
    sim: SimSummary | None  # at sim_workers (or at the last count tried)
    verdicts: dict[str, str]
    tried: tuple[int, ...]


def chain_at(preset: SimPreset, shape: EngineShape, workload: Workload, policy: Policy | None,
             num_workers: int) -> ChainResult:
    kv_tokens = preset.num_kv_blocks(shape.block_size, shape.kv_memory_bytes) * shape.block_size
    return plan_chain(preset.engine_step_cost, chain_mix(workload, policy, num_workers),
                      max_num_seqs=shape.max_num_seqs, max_num_batched_tokens=shape.max_num_batched_tokens,
                      kv_capacity_tokens=kv_tokens)


def chain_holds(result: ChainResult, budgets: dict[str, Budget]) -> bool:
    if not result.is_stable:
        return False
    for e in result.endpoints:
        b = budgets.get(e.name, Budget())
        if b.ttft_p95_ms is not None and e.ttft_s * 1e3 > b.ttft_p95_ms:
            return False
        if b.tbt_p95_ms is not None and e.tbt_s * 1e3 > b.tbt_p95_ms:
            return False
    return True


def sim_verdicts(summary: SimSummary, budgets: dict[str, Budget]) -> dict[str, str]:
    out = {}
    for e in summary.endpoints:
        failed = (e.unfinished + e.rejected) / e.num_requests if e.num_requests else 0.0
        out[e.name] = verdict(e.ttft_p95_ms, e.tbt_p95_ms, budgets.get(e.name, Budget()), failed)
    return out


def workers_needed(preset: SimPreset, shape: EngineShape, workload: Workload, policy: Policy | None,
                   budgets: dict[str, Budget], max_workers: int = 64) -> WorkersAnswer:
    chain_n = next((n for n in range(1, max_workers + 1)
                    if chain_holds(chain_at(preset, shape, workload, policy, n), budgets)), None)
    tried: list[int] = []
    results: dict[int, tuple[SimSummary, dict[str, str]]] = {}

    def holds(n: int) -> bool:
        summary = simulate(preset, shape, workload, policy, n)
        results[n] = (summary, sim_verdicts(summary, budgets))
        tried.append(n)
        return not any(v.startswith("BREAKS") for v in results[n][1].values())

    n = chain_n or 1
    if holds(n):  # the chain sees means; the tails may still hold with fewer workers
        while n > 1 and holds(n - 1):
            n -= 1
        return WorkersAnswer(chain_n, n, *results[n], tuple(tried))
    while n < max_workers:
        n = min(max_workers, n + 1 if n < 8 else int(n * 1.25) + 1)
        if holds(n):
            return WorkersAnswer(chain_n, n, *results[n], tuple(tried))
    return WorkersAnswer(chain_n, None, *results[n], tuple(tried))
