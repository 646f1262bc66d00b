"""`laneway bench tenants`, lane part: a quiet tenant's trickle beside a noisy tenant's flood.

Each run gets fresh worker and gateway processes. The noisy tenant (key sk-bench-noisy) runs
a closed loop of `--noisy-concurrency` long requests, more than the worker's sequence slots,
so the lane stays saturated; after `--warm-up` seconds the quiet tenant (sk-bench-quiet)
starts sending one short request every 1 / `--quiet-rate` seconds, open loop, for
`--duration` seconds, and the noisy loop keeps going until the quiet one is done. Both go
to the same endpoint, so both share one lane: the policy's `fairness` is all that differs
between the fair and the FCFS runs. The quiet tenant alone is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from pathlib import Path

from laneway.bench.tenants_report import LaneRun, tokens_per_s_in_window
from laneway.load.arrivals import Burst, Poisson
from laneway.load.closed_loop import run_closed_loop
from laneway.load.lengths import Fixed
from laneway.load.open_loop import RunResult, Target, run_open_loop
from laneway.load.stats import summarize
from laneway.load.workload import EndpointWorkload, Workload
from laneway.procs import ROOT, start_gateway, start_worker

BENCH_POLICIES = ROOT / "policies" / "bench"
NOISY_KEY, QUIET_KEY = "sk-bench-noisy", "sk-bench-quiet"  # their hashes are in the tenants-*.yaml policies
ENDPOINT = "chat"


@dataclass(frozen=True)
class LanePlan:
    name: str
    policy_file: str  # under policies/bench/
    with_noisy: bool


def quiet_workload(args: argparse.Namespace) -> Workload:
    every_s = 1.0 / args.quiet_rate
    return Workload((EndpointWorkload(ENDPOINT, Burst(every_s, 1), Fixed(args.quiet_prompt_tokens),
                                      Fixed(args.quiet_output_tokens)),), duration_s=args.duration, seed=args.seed)


def noisy_workload(args: argparse.Namespace) -> Workload:
    # The arrival process is unused by a closed loop beyond splitting users between endpoints.
    return Workload((EndpointWorkload(ENDPOINT, Poisson(1.0), Fixed(args.noisy_prompt_tokens),
                                      Fixed(args.noisy_output_tokens)),),
                    duration_s=args.warm_up + args.duration, seed=args.seed)


async def _drive(base: str, plan: LanePlan, args: argparse.Namespace) -> tuple[RunResult, RunResult | None]:
    quiet = quiet_workload(args)
    noisy_task = None
    if plan.with_noisy:
        noisy_task = asyncio.create_task(run_closed_loop(Target(base, NOISY_KEY), noisy_workload(args),
                                                         args.noisy_concurrency, label="noisy",
                                                         drain_timeout_s=args.drain_timeout))
        await asyncio.sleep(args.warm_up)  # the lane is saturated before the quiet tenant starts
    quiet_run = await run_open_loop(Target(base, QUIET_KEY), quiet, quiet.requests(), label="quiet",
                                    drain_timeout_s=args.drain_timeout)
    noisy_run = await noisy_task if noisy_task is not None else None
    return quiet_run, noisy_run


def run_lane(plan: LanePlan, args: argparse.Namespace, tmp: Path) -> LaneRun:
    worker = start_worker(tmp, "--max-num-seqs", str(args.max_num_seqs), "--max-num-batched-tokens",
                          str(args.max_num_batched_tokens), model=args.model, name=f"worker-{_slug(plan.name)}",
                          kv_cache_memory=args.kv_cache_memory, num_threads=args.num_threads)
    gateway = start_gateway(tmp, [worker], "--policy", str(BENCH_POLICIES / plan.policy_file),
                            name=f"gateway-{_slug(plan.name)}")
    try:
        base = f"http://127.0.0.1:{gateway.port}"
        _warm_up(base)
        quiet_run, noisy_run = asyncio.run(_drive(base, plan, args))
    finally:
        gateway.stop()
        worker.stop()
    quiet = summarize("quiet", quiet_run.results, args.duration, None, None)
    if noisy_run is None:
        return LaneRun(plan.name, plan.policy_file, quiet, None, None, quiet.output_tokens_per_s)
    noisy = summarize("noisy", noisy_run.results, noisy_run.elapsed_s, None, None)
    # The quiet window in the noisy loop's clock: it started warm_up seconds before the quiet one.
    start, end = args.warm_up, args.warm_up + args.duration
    return LaneRun(plan.name, plan.policy_file, quiet, noisy, tokens_per_s_in_window(noisy_run.results, start, end),
                   quiet.output_tokens_per_s)


def _warm_up(base: str) -> None:
    import httpx

    for key in (NOISY_KEY, QUIET_KEY):  # first forward passes pay one-off allocation costs
        r = httpx.post(f"{base}/v1/endpoints/{ENDPOINT}/chat/completions", timeout=120,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"messages": [{"role": "user", "content": "warm up"}], "max_tokens": 4})
        r.raise_for_status()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)

