"""`laneway load`: open-loop load against any OpenAI-compatible server, per endpoint.

    laneway load laneway/load/examples/mixed.yaml --url http://127.0.0.1:8000 --json out.json --plot out.png
    laneway load WORKLOAD --sweep rate=0.5,1,2,4 --policy policies/default.yaml --plot curve.png
    laneway load WORKLOAD --sweep concurrency=1,4,16
    laneway load --self-test 50,100,200,400       # how fast this generator sends accurately
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import httpx

from laneway.load.budgets import endpoint_budgets
from laneway.load.closed_loop import run_closed_loop
from laneway.load.open_loop import RunResult, Target, run_open_loop
from laneway.load.progress import Progress
from laneway.load.report import endpoint_verdict, render_table, run_json, summaries
from laneway.load.sweep import SweepSpec, curves, parse_sweep, render_curves
from laneway.load.workload import Workload
from laneway.load.workload_file import WorkloadError, load_workload
from workers.config import is_sim_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", nargs="?", type=Path, help="workload YAML (see laneway/load/examples/)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (paths come from the workload)")
    p.add_argument("--api-key", default=None, help="sent as a Bearer token")
    p.add_argument("--duration", type=float, default=None, help="seconds of arrivals (overrides the workload's)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply every arrival rate")
    p.add_argument("--policy", type=Path, default=None, help="policy YAML whose endpoint budgets to judge against")
    p.add_argument("--sweep", default=None, help="rate=0.5,1,2 (multiplies rates) or concurrency=1,4,16 (closed loop)")
    p.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG here")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait for responses after the last send")
    p.add_argument("--max-connections", type=int, default=4096,
                   help="most idle keep-alive connections kept for reuse (in-flight requests are never capped: "
                        "open loop)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--self-test", default=None, metavar="RATES",
                   help="check the generator itself against a local fake server at these req/s, e.g. 50,100,200")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.self_test:
        return _self_test(args)
    if args.workload is None:
        print("laneway load: give a workload file (or --self-test RATES)", file=sys.stderr)
        return 2
    try:
        workload = load_workload(args.workload)
        sweep = parse_sweep(args.sweep) if args.sweep else None
    except (WorkloadError, ValueError) as exc:
        print(f"laneway load: {exc}", file=sys.stderr)
        return 2
    if args.duration:
        workload = workload.with_duration(args.duration)
    budgets = endpoint_budgets(workload, args.policy)
    target = Target(args.url, args.api_key, args.max_connections)
    print(_banner(target, workload), file=sys.stderr)
    if sweep is None:
        run = _run_point(target, workload, args, "rate", args.rate_scale, f"rate x{args.rate_scale:g}")
        rows = summaries(run, budgets)
        print(render_table(run, rows))
        if args.json:
            args.json.write_text(json.dumps({"workload": str(args.workload), "url": args.url,
                                             "runs": [run_json(run, rows)]}, indent=2))
        if args.plot:
            from laneway.load.plot import plot_run

            plot_run(run, args.plot)
        return 0
    return _sweep(target, workload, sweep, budgets, args)


def _run_point(target: Target, workload: Workload, args: argparse.Namespace, kind: str, value: float,
               label: str) -> RunResult:
    if kind == "concurrency":
        progress = None if args.quiet else Progress(label, 0, workload.duration_s)
        return asyncio.run(run_closed_loop(target, workload, int(value), label=label, progress=progress,
                                           drain_timeout_s=args.drain_timeout))
    plan = workload.requests(scale=value)
    progress = None if args.quiet else Progress(label, len(plan), workload.duration_s)
    return asyncio.run(run_open_loop(target, workload, plan, label=label, progress=progress,
                                     drain_timeout_s=args.drain_timeout))


def _sweep(target: Target, workload: Workload, spec: SweepSpec, budgets, args: argparse.Namespace) -> int:
    per_point, verdicts, runs = [], [], []
    for value in spec.values:
        run = _run_point(target, workload, args, spec.kind, value, spec.label(value))
        rows = summaries(run, budgets)
        print(render_table(run, rows), flush=True)
        per_point.append(rows)
        verdicts.append([endpoint_verdict(s) for s in rows])
        runs.append(run_json(run, rows, {"sweep": {"kind": spec.kind, "value": value}}))
    cs = curves(list(spec.values), per_point, verdicts)
    print(render_curves(spec, cs))
    if args.json:
        breaks = {c.endpoint: (None if c.break_index is None else c.points[c.break_index].value) for c in cs}
        args.json.write_text(json.dumps({"workload": str(args.workload), "url": args.url,
                                         "sweep": {"kind": spec.kind, "values": list(spec.values)},
                                         "breaks_at": breaks, "runs": runs}, indent=2))
    if args.plot:
        from laneway.load.plot import plot_sweep

        plot_sweep(spec, cs, args.plot, title=f"laneway load {args.workload.name} against {args.url}")
    return 0


def _banner(target: Target, workload: Workload) -> str:
    """Say what is being measured; a simulated Laneway worker is named as such."""
    names = ", ".join(e.name for e in workload.endpoints)
    text = f"laneway load: {workload.source} -> {target.base_url} ({names}; {workload.duration_s:.0f}s of arrivals)"
    try:
        models = httpx.get(f"{target.base_url.rstrip('/')}/v1/models", timeout=2.0, headers=target.headers).json()
        sims = [m["id"] for m in models.get("data", []) if is_sim_model(str(m.get("id", "")))]
    except (httpx.HTTPError, ValueError, AttributeError, TypeError):
        sims = []
    if sims:
        text += f"\nSIMULATED target: the server reports model {sims[0]} (cost-model worker, not real inference)"
    return text


def _self_test(args: argparse.Namespace) -> int:
    from laneway.load.self_test import render, run_self_test

    rates = [float(r) for r in args.self_test.split(",") if r.strip()]
    duration = args.duration or 5.0
    rows = run_self_test(rates, duration_s=duration)
    print(render(rows, 20.0, 10.0, 8))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return 0
