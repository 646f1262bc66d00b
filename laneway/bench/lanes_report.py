"""Tables, target checks and a plot for `laneway bench lanes`."""

from __future__ import annotations

import argparse
from pathlib import Path

from laneway.bench.run_result import RunResult

INTERACTIVE, BULK = "inline-completion", "nightly-labeling"


def _f(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_markdown(runs: list[RunResult], args: argparse.Namespace, num_requests: int) -> str:
    lines = [
        f"Trace: {num_requests} requests, {args.duration:.0f} s of Poisson arrivals, seed {args.seed}, "
        f"load x{args.load}; model `{args.model}`, one worker, max_num_batched_tokens "
        f"{args.max_num_batched_tokens}, max_num_seqs {args.max_num_seqs}.",
        "",
        "| policy | endpoint | sent | done | refused | TTFT p50 / p95 / p99 ms | TBT p50 / p95 ms "
        "| queue wait p50 / p95 ms | out tok/s | goodput req/s | budget (TTFT / TBT ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for s in run.summaries:
            lines.append(
                f"| {run.name} | {s.endpoint} | {s.sent} | {s.completed} | {s.refused} | "
                f"{_f(s.ttft_p50_ms)} / {_f(s.ttft_p95_ms)} / {_f(s.ttft_p99_ms)} | "
                f"{_f(s.tbt_p50_ms)} / {_f(s.tbt_p95_ms)} | {_f(s.queue_wait_p50_ms)} / {_f(s.queue_wait_p95_ms)} | "
                f"{s.output_tokens_per_s:.1f} | {s.goodput_rps:.3f} | "
                f"{_f(s.budget_ttft_ms)} / {_f(s.budget_tbt_ms)} |")
    lines += ["", "| policy | total goodput req/s | total out tok/s | wall time s |", "|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run.name} | {sum(s.goodput_rps for s in run.summaries):.3f} | "
                     f"{sum(s.output_tokens_per_s for s in run.summaries):.1f} | {run.elapsed_s:.0f} |")
    return "\n".join(lines)


def verdicts(runs: list[RunResult]) -> list[str]:
    """The issue's targets, each stated with the measured ratio."""
    by = {r.name: r.by_endpoint() for r in runs}
    out: list[str] = []
    if "lanes" in by and INTERACTIVE in by["lanes"]:
        s = by["lanes"][INTERACTIVE]
        ok = s.ttft_p95_ms is not None and s.budget_ttft_ms is not None and s.ttft_p95_ms <= s.budget_ttft_ms
        out.append(f"interactive p95 TTFT under lanes: {_f(s.ttft_p95_ms)} ms vs budget {_f(s.budget_ttft_ms)} ms "
                   f"-> {'within' if ok else 'OVER'}")
    if {"lanes", "global-fcfs"} <= by.keys():
        lanes, fcfs = by["lanes"], by["global-fcfs"]
        a, b = lanes[INTERACTIVE].ttft_p95_ms, fcfs[INTERACTIVE].ttft_p95_ms
        if a and b:
            out.append(f"interactive p95 TTFT, global-fcfs / lanes = {b / a:.1f}x (target >= 5x)")
        bulk_l, bulk_g = lanes[BULK].output_tokens_per_s, fcfs[BULK].output_tokens_per_s
        if bulk_g:
            out.append(f"bulk output tok/s, lanes / global-fcfs = {bulk_l / bulk_g:.2f} (target >= 0.90)")
        good_l = sum(s.goodput_rps for s in lanes.values())
        good_g = sum(s.goodput_rps for s in fcfs.values())
        if good_g:
            out.append(f"goodput, lanes / global-fcfs = {good_l / good_g:.2f}x (target >= 2x)")
        else:
            out.append(f"goodput: lanes {good_l:.3f} req/s, global-fcfs 0 req/s")
    if "lanes-adaptive" in by:
        fixed = {n: sum(s.goodput_rps for s in by[n].values()) for n in by if n != "lanes-adaptive"}
        best = max(fixed, key=fixed.__getitem__) if fixed else None
        adaptive = sum(s.goodput_rps for s in by["lanes-adaptive"].values())
        if best:
            out.append(f"goodput, lanes-adaptive / best fixed ({best}) = "
                       f"{adaptive / fixed[best]:.2f} (target >= 1.0)" if fixed[best] else "")
    return [line for line in out if line]


def write_plot(runs: list[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = [s.endpoint for s in runs[0].summaries]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        by = run.by_endpoint()
        xs = [j + i * width for j in range(len(endpoints))]
        axes[0].bar(xs, [by[e].ttft_p95_ms or 0 for e in endpoints], width, label=run.name)
        axes[1].bar(xs, [by[e].output_tokens_per_s for e in endpoints], width, label=run.name)
    for ax, title in zip(axes, ["p95 TTFT (ms, log)", "output tokens/s"]):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(endpoints))], endpoints)
        ax.set_title(title)
    axes[0].set_yscale("log")
    budgets = runs[0].by_endpoint()
    for j, e in enumerate(endpoints):
        if budgets[e].budget_ttft_ms:
            axes[0].hlines(budgets[e].budget_ttft_ms, j - 0.1, j + 0.8, colors="black", linestyles="dashed")
    axes[1].legend()
    fig.suptitle("laneway bench lanes: latency and throughput per endpoint, per policy (dashed: TTFT budget)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
