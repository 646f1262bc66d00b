"""`laneway bench tenants`: fairness between tenants, on one lane and in the Batch API.

One command, two parts (issue 16's Benchmark), each run on fresh processes:
- lanes (tenants_lane.py): the quiet tenant alone, then beside the noisy tenant under fair
  queuing (policies/bench/tenants-fair.yaml), then under FCFS (tenants-fcfs.yaml, the same
  policy but for `fairness: fcfs`). Reported: the quiet tenant's TTFT and its ratio to the
  run alone, and the noisy tenant's output tokens/s.
- batches (tenants_batches.py): a small batch submitted while a big one runs, on one
  gateway and on two sharing one Redis. Reported: when the small batch's first and last
  lines were answered, and its share of the lines answered while both ran.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from laneway.bench.tenants_batches import run_batches
from laneway.bench.tenants_lane import LanePlan, run_lane
from laneway.bench.tenants_report import (
    ALONE,
    expected_small_share,
    lane_verdicts,
    render_batch_markdown,
    render_lane_markdown,
)

FAIR, FCFS = "fair + noisy", "fcfs + noisy"
LANE_PLANS = (LanePlan(ALONE, "tenants-fair.yaml", False), LanePlan(FAIR, "tenants-fair.yaml", True),
              LanePlan(FCFS, "tenants-fcfs.yaml", True))
PARTS = ("lanes", "batches")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"laneway bench tenants: {problem}")
        return 2
    parts = args.only or list(PARTS)
    out: list[str] = [f"Model `{args.model}`, one worker, max_num_seqs {args.max_num_seqs}, max_num_batched_tokens "
                      f"{args.max_num_batched_tokens}; load average at the start {_load()} (1/5/15 min)."]
    record: dict = {"args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="laneway-bench-tenants-") as tmp_name:
        tmp = Path(args.keep_dir) if args.keep_dir else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        if "lanes" in parts:
            runs = []
            for plan in LANE_PLANS:
                started = time.perf_counter()
                runs.append(run_lane(plan, args, tmp))
                print(f"  lanes / {plan.name}: done in {time.perf_counter() - started:.0f}s (load {_load()})",
                      flush=True)
            out += ["", f"Lane: the quiet tenant sends a request of {args.quiet_prompt_tokens} prompt tokens and "
                        f"{args.quiet_output_tokens} out every {1 / args.quiet_rate:g} s for {args.duration:g} s; "
                        f"the noisy tenant keeps {args.noisy_concurrency} requests of {args.noisy_prompt_tokens} "
                        f"prompt tokens and {args.noisy_output_tokens} out in flight (closed loop), from "
                        f"{args.warm_up:g} s before the quiet tenant starts until it is done. Noisy tok/s: its "
                        "requests that finished while the quiet tenant ran.", "",
                    *render_lane_markdown(runs), "", *lane_verdicts(runs, FAIR, FCFS)]
            record["lanes"] = [asdict(r) for r in runs]
        if "batches" in parts:
            outcomes = []
            for num_gateways in (1, 2):
                started = time.perf_counter()
                share = expected_small_share(1.0, 1.0, args.small_lines, num_gateways * args.batch_concurrency)
                outcomes.append((f"{num_gateways}", run_batches(num_gateways, args, tmp), share))
                print(f"  batches / {num_gateways} gateway(s): done in {time.perf_counter() - started:.0f}s "
                      f"(load {_load()})", flush=True)
            out += ["", f"Batches: the noisy tenant's batch of {args.big_lines} lines, then {args.small_after:g} s "
                        f"later the quiet tenant's batch of {args.small_lines} lines, all of "
                        f"{args.batch_prompt_tokens} prompt tokens and {args.batch_output_tokens} out; both "
                        f"tenants of weight 1; {args.batch_concurrency} batch slots per gateway; counts polled "
                        f"every {args.poll:g} s (times are late by up to that); both batches cancelled once the "
                        f"small one is done or after {args.batch_window:g} s.", "",
                    *render_batch_markdown(outcomes)]
            record["batches"] = [{"gateways": name, **asdict(o), "small_share": o.small_share,
                                  "small_share_once_running": o.small_share_once_running, "share_by_weight": w}
                                 for name, o, w in outcomes]
    out += ["", f"Load average at the end {_load()}."]
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, default=str))
    return 0


def _check(args: argparse.Namespace) -> str | None:
    if args.quiet_rate <= 0 or args.duration <= 0 or args.warm_up < 0:
        return "--quiet-rate and --duration must be positive, --warm-up at least 0"
    if args.small_after >= args.batch_window:
        return f"--small-after ({args.small_after:g} s) must be inside --batch-window ({args.batch_window:g} s)"
    if min(args.big_lines, args.small_lines, args.noisy_concurrency, args.batch_concurrency) < 1:
        return "line counts and concurrencies must be at least 1"
    return None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts (default: both)")
    p.add_argument("--model", default="tiny")
    p.add_argument("--max-num-seqs", type=int, default=8,
                   help="the worker's sequence slots; keep it under --noisy-concurrency to saturate the lane")
    p.add_argument("--max-num-batched-tokens", type=int, default=512)
    p.add_argument("--kv-cache-memory", default="256MB")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    lane = p.add_argument_group("lanes")
    lane.add_argument("--duration", type=float, default=40.0, help="seconds the quiet tenant sends")
    lane.add_argument("--warm-up", type=float, default=5.0, help="seconds the noisy tenant runs before the quiet one")
    lane.add_argument("--quiet-rate", type=float, default=1.0, help="quiet requests per second (evenly spaced)")
    lane.add_argument("--quiet-prompt-tokens", type=int, default=32)
    lane.add_argument("--quiet-output-tokens", type=int, default=16)
    lane.add_argument("--noisy-concurrency", type=int, default=16)
    lane.add_argument("--noisy-prompt-tokens", type=int, default=512)
    lane.add_argument("--noisy-output-tokens", type=int, default=128)
    lane.add_argument("--drain-timeout", type=float, default=120.0)
    batch = p.add_argument_group("batches")
    batch.add_argument("--big-lines", type=int, default=1500)
    batch.add_argument("--small-lines", type=int, default=16)
    batch.add_argument("--small-after", type=float, default=10.0, help="seconds after the big batch")
    batch.add_argument("--batch-prompt-tokens", type=int, default=256)
    batch.add_argument("--batch-output-tokens", type=int, default=128)
    batch.add_argument("--batch-concurrency", type=int, default=8, help="batch slots per gateway")
    batch.add_argument("--batch-window", type=float, default=90.0,
                       help="stop measuring (and cancel both batches) this long after the big batch")
    batch.add_argument("--poll", type=float, default=0.2, help="seconds between polls of the batches' counts")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--keep-dir", help="keep process logs here")
