"""`laneway bench lanes`: one seeded open-loop trace, replayed under four policies.

Each policy gets fresh worker and gateway processes (so no run inherits another's prefix
cache) on the same machine, one after another, within one command. The report keeps
throughput and latency apart, per endpoint and per policy, and judges every run against
the budgets of the lanes policy: the product's promises do not change with the batching.
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
from laneway.bench.lanes_report import render_markdown, verdicts, write_plot
from laneway.bench.run_result import RunResult
from laneway.load.client import RequestResult
from laneway.load.replay import replay
from laneway.load.stats import summarize
from laneway.load.trace import EndpointLoad, make_trace
from laneway.procs import ROOT, start_gateway, start_worker

BENCH_POLICIES = ROOT / "policies" / "bench"
RUNS = [
    ("lanes", "lanes.yaml"),
    ("global-fcfs", "global-fcfs.yaml"),
    ("global-long-window", "global-long-window.yaml"),
    ("lanes-adaptive", "lanes-adaptive.yaml"),
]
# The mix from the issue: inline completions (short prompts, ~32 out), chat streams (~128
# out) and bulk labelling (long prompts, ~256 out). Rates are scaled by --load.
WORKLOAD = [
    EndpointLoad("inline-completion", 1.0, (24, 96), (24, 40)),
    EndpointLoad("chat", 0.4, (64, 192), (96, 160)),
    EndpointLoad("nightly-labeling", 0.4, (256, 640), (192, 320)),
]


def run_one(name: str, policy_file: Path, trace, args: argparse.Namespace, tmp: Path) -> RunResult:
    worker_args = ["--max-num-batched-tokens", str(args.max_num_batched_tokens), "--max-num-seqs",
                   str(args.max_num_seqs)]
    worker = start_worker(tmp, *worker_args, model=args.model, name=f"worker-{name}",
                          kv_cache_memory=args.kv_cache_memory, num_threads=args.num_threads)
    gateway = start_gateway(tmp, [worker], "--policy", str(policy_file), name=f"gateway-{name}")
    base = f"http://127.0.0.1:{gateway.port}"
    try:
        _warm_up(base)
        results, elapsed = asyncio.run(replay(base, trace, drain_timeout_s=args.drain_timeout))
    finally:
        gateway.stop()
        worker.stop()
    budgets = load_policy(BENCH_POLICIES / "lanes.yaml").endpoints
    summaries = []
    for endpoint in sorted({a.endpoint for a in trace}):
        slo = budgets[endpoint].slo
        mine = [r for r in results if r.endpoint == endpoint]
        summaries.append(summarize(endpoint, mine, elapsed, slo.ttft_p95_ms, slo.tbt_p95_ms))
    _save_raw(tmp / f"{name}.json", results)
    return RunResult(name, policy_file.name, elapsed, summaries)


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
    loads = [EndpointLoad(w.endpoint, w.rate_per_s * args.load, w.prompt_tokens, w.output_tokens) for w in WORKLOAD]
    trace = make_trace(loads, args.duration, seed=args.seed)
    runs = [(n, f) for n, f in RUNS if not args.only or n in args.only]
    print(f"trace: {len(trace)} requests over {args.duration:.0f}s (seed {args.seed}, load x{args.load}); "
          f"model {args.model}; policies: {', '.join(n for n, _ in runs)}", flush=True)
    out: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="laneway-bench-") as tmp_name:
        tmp = Path(args.keep_dir) if args.keep_dir else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        for name, file in runs:
            started = time.perf_counter()
            result = run_one(name, BENCH_POLICIES / file, trace, args, tmp)
            out.append(result)
            print(f"  {name}: done in {time.perf_counter() - started:.0f}s", flush=True)
    text = render_markdown(out, args, len(trace))
    print(text)
    for line in verdicts(out):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps([{"name": r.name, "policy": r.policy, "elapsed_s": r.elapsed_s,
                                                "endpoints": [s.as_dict() for s in r.summaries]} for r in out],
                                              indent=2))
    if args.plot:
        write_plot(out, Path(args.plot))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="small")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals per policy")
    p.add_argument("--load", type=float, default=1.0, help="scale all arrival rates")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--only", nargs="*", help="run only these policies (lanes, global-fcfs, ...)")
    p.add_argument("--max-num-batched-tokens", type=int, default=128)
    p.add_argument("--max-num-seqs", type=int, default=32)
    p.add_argument("--kv-cache-memory", default="512MB")
    p.add_argument("--num-threads", type=int, default=2)
    p.add_argument("--drain-timeout", type=float, default=180.0, help="seconds to wait for the last responses")
    p.add_argument("--json", help="write the summaries as JSON here")
    p.add_argument("--plot", help="write a PNG plot here")
    p.add_argument("--keep-dir", help="keep process logs and raw results here")
