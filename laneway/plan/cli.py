"""`laneway plan`: predict per-endpoint latency, throughput, cost and worker count. SIMULATED.

    laneway plan --workload laneway/load/examples/mixed.yaml --policy policies/default.yaml --preset cpu-small
    laneway plan --workload W --preset h100-llama3-8b --gpu-hour-price 2.5 --max-num-seqs 256
    laneway plan --workload W --calibration calibration.json      # a `laneway calibrate` fit
    laneway plan --seed-check                                      # seed 003's worked example
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from workers.config import parse_size
from workers.sim.presets import PRESETS, get_preset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workload", type=Path, help="workload YAML (the same file `laneway load` takes)")
    p.add_argument("--policy", type=Path, default=None, help="policy YAML: lanes, windows and budgets")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS))
    src.add_argument("--calibration", type=Path, help="a `laneway calibrate --out` JSON instead of a preset")
    p.add_argument("--gpu-hour-price", type=float, default=None, help="$ per GPU-hour, for cost per M tokens")
    p.add_argument("--workers", type=int, default=None, help="plan for this many workers (default: find how many)")
    p.add_argument("--max-workers", type=int, default=64)
    p.add_argument("--duration", type=float, default=None, help="seconds of simulated arrivals (default: workload's)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply every arrival rate (as `laneway load`)")
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("--max-num-batched-tokens", type=int, default=512)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--kv-cache-memory", type=parse_size, default=None,
                   help="KV pool (default: the preset's free memory)")
    p.add_argument("--no-prefix-caching", action="store_true")
    p.add_argument("--regions", default=None, metavar="C1,C2,...",
                   help="also run closed-loop concurrency points on the virtual worker (the four regions)")
    p.add_argument("--regions-shape", default=None, metavar="PROMPT,OUTPUT,CACHED",
                   help="requests of the closed loop: prompt and output tokens, and the share of each prompt that "
                        "is the user's own context, cacheable between turns (default: the workload's means)")
    p.add_argument("--regions-seconds", type=float, default=150.0,
                   help="simulated seconds per concurrency point; several times a request's end-to-end time, so "
                        "the first cold-cache wave is not all that is measured")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--seed-check", action="store_true", help="recompute seed 003's worked example and stop")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.seed_check:
        from laneway.plan.seed_check import render_seed_checks

        print(render_seed_checks())
        return 0
    if args.workload is None:
        print("laneway plan: give --workload (or --seed-check)", file=sys.stderr)
        return 2
    from lanes.policy import load_policy
    from laneway.load.budgets import endpoint_budgets
    from laneway.load.workload_file import WorkloadError, load_workload
    from laneway.plan import capacity, report
    from laneway.plan.simulate import EngineShape, simulate
    from laneway.plan.traffic import chain_mix

    try:
        workload = load_workload(args.workload)
    except WorkloadError as exc:
        print(f"laneway plan: {exc}", file=sys.stderr)
        return 2
    if args.duration:
        workload = workload.with_duration(args.duration)
    if args.rate_scale != 1.0:
        workload = workload.scaled(args.rate_scale)
    preset = get_preset(str(args.calibration)) if args.calibration else get_preset(args.preset)
    policy = load_policy(args.policy) if args.policy else None
    budgets = endpoint_budgets(workload, args.policy)
    shape = EngineShape(args.max_num_seqs, args.max_num_batched_tokens, args.max_model_len, args.block_size,
                        args.kv_cache_memory, not args.no_prefix_caching)
    print(report.header(preset, shape, workload, str(args.policy) if args.policy else None), "\n")

    if args.workers:
        n = args.workers
        answer = None
        sim = simulate(preset, shape, workload, policy, n)
        verdicts = capacity.sim_verdicts(sim, budgets)
    else:
        answer = capacity.workers_needed(preset, shape, workload, policy, budgets, args.max_workers)
        n = answer.sim_workers or answer.tried[-1]
        assert answer.sim is not None, "the worker search simulated nothing"
        sim, verdicts = answer.sim, answer.verdicts
    chain = capacity.chain_at(preset, shape, workload, policy, n)
    print(report.endpoint_table(workload, budgets, chain, sim, verdicts, n), "\n")
    print(report.throughput_table(chain, sim, preset, n, args.gpu_hour_price), "\n")

    mix = chain_mix(workload, policy)
    out_rate = sum(m.rate_per_s * m.output_tokens for m in mix) or 1.0
    context = sum(m.rate_per_s * m.output_tokens * (m.prompt_tokens + m.output_tokens / 2) for m in mix) / out_rate
    rate = sum(m.rate_per_s for m in mix) or 1.0
    final = sum(m.rate_per_s * (m.prompt_tokens + m.output_tokens) for m in mix) / rate
    kv_tokens = preset.num_kv_blocks(shape.block_size, shape.kv_memory_bytes) * shape.block_size
    curve = capacity.decode_curve(preset, context, final, kv_tokens)
    print(report.curve_table(curve, context, preset, args.gpu_hour_price), "\n")
    regions = None
    if args.regions:
        prompt = round(sum(m.rate_per_s * m.prompt_tokens for m in mix) / rate)
        output = round(sum(m.rate_per_s * m.output_tokens for m in mix) / rate)
        cached = sum(m.rate_per_s * m.cached_tokens for m in mix) / max(1e-9, sum(m.rate_per_s * m.prompt_tokens
                                                                                  for m in mix))
        if args.regions_shape:
            p_text, o_text, c_text = args.regions_shape.split(",")
            prompt, output, cached = int(p_text), int(o_text), float(c_text)
        cs = [int(c) for c in args.regions.split(",") if c.strip()]
        try:
            regions = capacity.regions(preset, shape, prompt, output, cs, horizon_s=args.regions_seconds,
                                       cached_share=cached)
        except ValueError as exc:
            print(f"laneway plan: --regions: {exc}", file=sys.stderr)
            return 2
        print(report.regions_table(regions, prompt, output, cached), "\n")
    if answer is not None:
        print(report.workers_text(answer))
        if args.gpu_hour_price is not None and answer.sim_workers:
            total = sim.output_tps * n
            print(f"- {n} worker(s) x {preset.num_devices} GPU(s) serve {total:.1f} output tok/s in all")
    if args.json:
        args.json.write_text(json.dumps(_finite({
            "simulated": True, "preset": preset.name, "cost_model": preset.cost.describe(),
            "workload": str(args.workload), "policy": str(args.policy) if args.policy else None,
            "num_workers": n, "workers_needed": None if answer is None else {
                "chain": answer.chain_workers, "simulation": answer.sim_workers, "tried": list(answer.tried)},
            "chain": asdict(chain), "simulation": asdict(sim), "verdicts": verdicts,
            "curve": asdict(curve), "regions": None if regions is None else [asdict(r) for r in regions],
        }), indent=2))
    return 0


def _finite(v):
    """JSON has no infinity: an unstable chain's latencies become null."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return None
    return v
