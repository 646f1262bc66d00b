"""`laneway calibrate`: fit the simulator's per-pass cost from measurements of the real engine.

    laneway calibrate --measure [--model small]          # time the real engine here, then fit
    laneway calibrate --rows bench.json|rows.csv         # fit rows measured elsewhere
    ... --out calibration.json   # then: laneway worker --model sim:calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workers.engine.cost_fit import HOST_TERMS, TERMS, FitError, fit_linear_cost
from workers.sim.calibration_rows import read_rows, write_rows
from workers.sim.presets import PRESETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--rows", type=Path, help="CSV/JSON of (batch_size, num_tokens, kv_tokens, step_time_s) rows, "
                                               "or `laneway bench engine` JSON with decode points")
    src.add_argument("--measure", action="store_true", help="time the real engine in this process first")
    p.add_argument("--model", default="small", help="with --measure: the model preset or directory to time")
    p.add_argument("--decode-points", default="1x32,4x32,16x32,32x32,1x384,8x384",
                   help="with --measure: decode batches as BATCHxCONTEXT")
    p.add_argument("--prefill-lengths", default="128,512,1024", help="with --measure: single prompts to prefill")
    p.add_argument("--repeats", type=int, default=2, help="with --measure: passes over the whole plan")
    p.add_argument("--num-threads", type=int, default=1,
                   help="with --measure: torch threads (1 is steadiest on a shared machine)")
    p.add_argument("--terms", default=None, help=f"terms to fit, from {', '.join(TERMS)} (default: fixed, per_token, "
                                                 "per_kv_token, and per_pair when there are prefill rows)")
    p.add_argument("--base-preset", default="cpu-small", choices=sorted(PRESETS),
                   help="preset whose memory facts (KV bytes/token, pool) the calibration keeps")
    p.add_argument("--out", type=Path, help="write the calibration JSON here (for sim:PATH and laneway plan)")
    p.add_argument("--save-rows", type=Path, help="write the measured rows as CSV here (host rows: *.host.csv)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    terms = tuple(t.strip() for t in args.terms.split(",") if t.strip()) if args.terms else None
    if args.measure:
        from workers.sim.measure import MeasurePlan, measure

        plan = MeasurePlan(model=args.model, decode_points=_points(args.decode_points),
                           prefill_lengths=_ints(args.prefill_lengths), repeats=args.repeats,
                           num_threads=args.num_threads)
        print(f"measuring the real engine ({args.model}, {args.num_threads} threads) ...", file=sys.stderr)
        measured = measure(plan, progress=lambda line: print(line, file=sys.stderr))
        rows, host_rows = measured.forward, measured.host
        source = (f"laneway calibrate --measure --model {args.model} --decode-points {args.decode_points} "
                  f"--prefill-lengths {args.prefill_lengths} --num-threads {args.num_threads}")
    else:
        rows, host_rows = read_rows(args.rows), []
        source = f"laneway calibrate --rows {args.rows}"
    if args.save_rows:
        write_rows(args.save_rows, rows)
        if host_rows:
            write_rows(args.save_rows.with_suffix(".host.csv"), host_rows)
    try:
        fit = fit_linear_cost(rows, terms, source=source)
    except FitError as exc:
        print(f"laneway calibrate: {exc}", file=sys.stderr)
        return 2
    host_fit = fit_linear_cost(host_rows, HOST_TERMS, source=source) if host_rows else None
    print("forward pass (what a simulated worker sleeps):")
    print(fit.summary())
    for row, err in zip(rows, fit.residuals):
        s = row.shape
        print(f"  B={s.num_seqs:3d} tokens={s.num_tokens:4d} kv={s.kv_tokens_read:6d} "
              f"pairs={s.attention_pairs:7d}: measured "
              f"{row.seconds * 1e3:8.2f} ms, fit {row.seconds * (1 + err) * 1e3:8.2f} ms ({err:+.1%})")
    if host_fit is not None:
        print("host overhead per engine step (schedule, sample, detokenize; added by laneway plan's simulation):")
        print(host_fit.summary())
    if args.out:
        args.out.write_text(json.dumps({"base_preset": args.base_preset, "cost": fit.cost.to_json(),
                                        "host_overhead": None if host_fit is None else host_fit.cost.to_json(),
                                        "num_rows": fit.num_rows, "rms_rel_error": fit.rms_rel_error,
                                        "max_rel_error": fit.max_rel_error}, indent=2) + "\n")
        print(f"wrote {args.out} (use: laneway worker --model sim:{args.out})")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _points(text: str) -> tuple[tuple[int, int], ...]:
    """'1x32,8x384' -> ((1, 32), (8, 384))"""
    points = []
    for item in text.split(","):
        b, _, ctx = item.strip().partition("x")
        if not b.isdigit() or not ctx.isdigit():
            raise SystemExit(f"laneway calibrate: cannot read decode point {item!r}; write BATCHxCONTEXT, e.g. 8x384")
        points.append((int(b), int(ctx)))
    return tuple(points)
