"""`laneway bench lanes`: one seeded open-loop trace, replayed under several policies.

Each run gets fresh worker and gateway processes (so no run inherits another's prefix
cache) on the same machine, one after another, within one command. The report keeps
throughput and latency apart, per endpoint and per run, and judges every run against the
budgets of the scenario's lanes policy: the product's promises do not change with the
batching. Scenarios (scenarios.py): `steady` compares four policies on one mixed trace;
`backlog-start` and `backlog-mid` land a bulk burst on steady interactive and streaming
traffic and compare lanes with and without it, and one FCFS lane with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from lanes.policy import load_policy
from laneway.bench import backlog_report, lanes_report
from laneway.bench.backlog_report import burst_outcome
from laneway.bench.run_result import RunResult
from laneway.bench.scenarios import SCENARIOS, Burst, RunPlan, Scenario, burst_trace, scenario, steady_trace, with_burst
from laneway.load.client import RequestResult
from laneway.load.replay import replay
from laneway.load.stats import summarize
from laneway.load.trace import Arrival
from laneway.procs import ROOT, start_gateway, start_worker

BENCH_POLICIES = ROOT / "policies" / "bench"


def run_one(plan: RunPlan, sc: Scenario, trace: list[Arrival], args: argparse.Namespace, tmp: Path) -> RunResult:
    worker_args = ["--max-num-batched-tokens", str(args.max_num_batched_tokens), "--max-num-seqs",
                   str(args.max_num_seqs)]
    worker = start_worker(tmp, *worker_args, model=args.model, name=f"worker-{plan.name}",
                          kv_cache_memory=args.kv_cache_memory, num_threads=args.num_threads)
    gateway = start_gateway(tmp, [worker], "--policy", str(BENCH_POLICIES / plan.policy_file),
                            name=f"gateway-{plan.name}")
    base = f"http://127.0.0.1:{gateway.port}"
    try:
        _warm_up(base)
        results, elapsed = asyncio.run(replay(base, trace, drain_timeout_s=args.drain_timeout))
    finally:
        gateway.stop()
        worker.stop()
    budgets = load_policy(BENCH_POLICIES / sc.budgets_file).endpoints
    summaries = []
    for endpoint in sorted({a.endpoint for a in trace}):
        slo = budgets[endpoint].slo
        mine = [r for r in results if r.endpoint == endpoint]
        summaries.append(summarize(endpoint, mine, elapsed, slo.ttft_p95_ms, slo.tbt_p95_ms))
    _save_raw(tmp / f"{plan.name}.json", results)
    outcome = burst_outcome(results, sc.burst) if plan.with_burst and sc.burst is not None else None
    return RunResult(plan.name, plan.policy_file, elapsed, summaries, outcome)


def _warm_up(base: str) -> None:
    for _ in range(2):  # first forward passes pay one-off allocation costs
        httpx.post(f"{base}/v1/endpoints/chat/completions", json={"prompt": "warm up", "max_tokens": 4},
                   timeout=120)


def _save_raw(path: Path, results: list[RequestResult]) -> None:
    rows = [{"endpoint": r.endpoint, "status": r.status, "ttft_s": r.ttft_s, "tbt_s": r.tbt_s,
             "output_tokens": r.output_tokens, "queue_wait_ms": r.queue_wait_ms, "error": r.error,
             "reject_reason": r.reject_reason} for r in results]
    path.write_text(json.dumps(rows))


def main(args: argparse.Namespace) -> int:
    burst = Burst(args.backlog_size, args.backlog_prompt_tokens, args.backlog_output_tokens, args.backlog_at)
    try:
        sc = scenario(args.scenario, args.duration, burst)
    except ValueError as exc:
        print(f"laneway bench lanes: {exc}")
        return 2
    steady = steady_trace(sc, args.duration, args.load, args.seed)
    loaded = with_burst(steady, burst_trace(sc.burst, args.seed)) if sc.burst is not None else steady
    runs = [plan for plan in sc.runs if not args.only or plan.name in args.only]
    print(f"scenario {sc.name}: {len(steady)} steady requests over {args.duration:.0f}s (seed {args.seed}, "
          f"load x{args.load})"
          + (f", a backlog of {sc.burst.num_requests} bulk requests at t={sc.burst.at_s:.0f}s" if sc.burst else "")
          + f"; model {args.model}; runs: {', '.join(plan.name for plan in runs)}", flush=True)
    out: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="laneway-bench-") as tmp_name:
        tmp = Path(args.keep_dir) if args.keep_dir else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        for plan in runs:
            started = time.perf_counter()
            result = run_one(plan, sc, loaded if plan.with_burst else steady, args, tmp)
            out.append(result)
            print(f"  {plan.name}: done in {time.perf_counter() - started:.0f}s", flush=True)
    if sc.burst is None:
        text, lines = lanes_report.render_markdown(out, args, len(steady)), lanes_report.verdicts(out)
    else:
        text = backlog_report.render_markdown(out, args, sc.burst, len(steady))
        lines = backlog_report.verdicts(out)
    print(text)
    for line in lines:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "scenario": sc.name, "burst": None if sc.burst is None else vars(sc.burst),
            "runs": [{"name": r.name, "policy": r.policy, "elapsed_s": r.elapsed_s,
                      "burst": None if r.burst is None else vars(r.burst),
                      "endpoints": [s.as_dict() for s in r.summaries]} for r in out]}, indent=2))
    if args.plot:
        lanes_report.write_plot(out, Path(args.plot))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", choices=SCENARIOS, default="steady",
                   help="steady: four policies on one mixed trace; backlog-start / backlog-mid: a bulk "
                        "burst lands at the start / into steady interactive and streaming traffic, "
                        "under lanes with and without it and under one FCFS lane with it")
    p.add_argument("--model", default="small")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of steady arrivals per run")
    p.add_argument("--load", type=float, default=1.0, help="scale the steady arrival rates")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--only", nargs="*", help="run only these runs (steady: lanes, global-fcfs, ...; "
                                             "backlog: lanes, lanes+backlog, global-fcfs+backlog)")
    p.add_argument("--backlog-size", type=int, default=32, help="bulk requests in the burst")
    p.add_argument("--backlog-prompt-tokens", type=int, default=600)
    p.add_argument("--backlog-output-tokens", type=int, default=256)
    p.add_argument("--backlog-at", type=float, default=None,
                   help="seconds into the run the burst lands (default: 0 for backlog-start; for "
                        "backlog-mid 20, or a third of --duration when that is shorter)")
    p.add_argument("--max-num-batched-tokens", type=int, default=128)
    p.add_argument("--max-num-seqs", type=int, default=32)
    p.add_argument("--kv-cache-memory", default="512MB")
    p.add_argument("--num-threads", type=int, default=2)
    p.add_argument("--drain-timeout", type=float, default=180.0, help="seconds to wait for the last responses")
    p.add_argument("--json", help="write the summaries as JSON here")
    p.add_argument("--plot", help="write a PNG plot here")
    p.add_argument("--keep-dir", help="keep process logs and raw results here")
