"""The backlog scenarios' report: what a bulk burst does to the latency lanes, and how the
burst itself fares, against the issue's targets.

Interference ratio: a latency percentile of the run with the burst divided by the same
percentile of the run without it, on the same steady arrivals in the same command (1.0: the
burst changed nothing). Refusals compare in percentage points of requests sent. Bulk
completion compares lanes with one FCFS lane, both with the burst.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from laneway.bench.scenarios import BULK, INTERACTIVE, STREAMING, Burst

if TYPE_CHECKING:
    from laneway.bench.run_result import RunResult
    from laneway.load.client import RequestResult
    from laneway.load.stats import EndpointSummary

QUIET, LOADED, FCFS = "lanes", "lanes+backlog", "global-fcfs+backlog"
MAX_INTERFERENCE = 1.5  # p95 with the burst / without
MAX_EXTRA_REFUSALS_POINTS = 2.0
MIN_BULK_RATE_VS_FCFS = 0.8


@dataclass(frozen=True)
class BurstOutcome:
    num_sent: int
    num_done: int
    output_tokens: int
    done_after_s: float | None  # from the burst's arrival to its last request's end; None: not all done

    @property
    def share_done(self) -> float:
        return self.num_done / self.num_sent if self.num_sent else 0.0


def burst_outcome(results: Sequence[RequestResult], burst: Burst) -> BurstOutcome:
    at_s = burst.at_s or 0.0
    mine = [r for r in results if r.endpoint == burst.endpoint and r.scheduled_at == at_s]
    done = [r for r in mine if r.ok]
    ends = [r.finished_at for r in done if r.finished_at is not None]
    all_done = len(done) == len(mine) and len(ends) == len(done)
    return BurstOutcome(num_sent=len(mine), num_done=len(done), output_tokens=sum(r.output_tokens for r in done),
                        done_after_s=max(ends, default=at_s) - at_s if all_done else None)


def ratio(loaded: float | None, quiet: float | None) -> float | None:
    """loaded / quiet; None when either is unmeasured or the quiet one is 0."""
    if loaded is None or not quiet:
        return None
    return loaded / quiet


def refused_pct(s: EndpointSummary | None) -> float | None:
    return 100.0 * s.refused / s.sent if s is not None and s.sent else None


@dataclass(frozen=True)
class Comparison:
    what: str
    quiet: float | None  # without the burst
    loaded: float | None  # with it
    target: str

    @property
    def ratio(self) -> float | None:
        return ratio(self.loaded, self.quiet)


def interference(runs: Sequence[RunResult]) -> list[Comparison]:
    """Latency with the burst against without, under lanes: the numbers the targets judge."""
    by = {r.name: r.by_endpoint() for r in runs}
    if not {QUIET, LOADED} <= by.keys():
        return []
    quiet, loaded = by[QUIET], by[LOADED]
    rows = []
    for endpoint, field, label, target in [
        (INTERACTIVE, "ttft_p95_ms", "interactive TTFT p95 ms", f"<= {MAX_INTERFERENCE}x"),
        (INTERACTIVE, "ttft_p99_ms", "interactive TTFT p99 ms", ""),
        (STREAMING, "tbt_p95_ms", "streaming TBT p95 ms", f"<= {MAX_INTERFERENCE}x"),
        (STREAMING, "tbt_p99_ms", "streaming TBT p99 ms", ""),
        (STREAMING, "ttft_p95_ms", "streaming TTFT p95 ms", ""),
    ]:
        q, w = quiet.get(endpoint), loaded.get(endpoint)
        rows.append(Comparison(label, getattr(q, field) if q else None, getattr(w, field) if w else None, target))
    return rows


def refusals(runs: Sequence[RunResult]) -> list[Comparison]:
    by = {r.name: r.by_endpoint() for r in runs}
    if not {QUIET, LOADED} <= by.keys():
        return []
    return [Comparison(f"{label} refused %", refused_pct(by[QUIET].get(endpoint)),
                       refused_pct(by[LOADED].get(endpoint)),
                       f"<= +{MAX_EXTRA_REFUSALS_POINTS:g} points" if endpoint == INTERACTIVE else "")
            for endpoint, label in [(INTERACTIVE, "interactive"), (STREAMING, "streaming")]]


def bulk_rate_vs_fcfs(runs: Sequence[RunResult]) -> float | None:
    """The burst's output tokens/s over the run under lanes, over the same under one FCFS lane."""
    by = {r.name: r.by_endpoint() for r in runs}
    if not {LOADED, FCFS} <= by.keys() or BULK not in by[LOADED] or BULK not in by[FCFS]:
        return None
    return ratio(by[LOADED][BULK].output_tokens_per_s, by[FCFS][BULK].output_tokens_per_s)


def _f(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_markdown(runs: Sequence[RunResult], args: argparse.Namespace, burst: Burst,
                    num_steady: int) -> str:
    lines = [
        f"Steady trace: {num_steady} interactive and streaming requests, {args.duration:.0f} s of Poisson "
        f"arrivals, seed {args.seed}, load x{args.load}. Backlog: {burst.num_requests} bulk requests of "
        f"{burst.prompt_tokens} prompt tokens and {burst.output_tokens} out, all at t={burst.at_s or 0:.0f} s. "
        f"Model `{args.model}`, one worker, max_num_batched_tokens {args.max_num_batched_tokens}, "
        f"max_num_seqs {args.max_num_seqs}.",
        "",
        "| run | endpoint | sent | done | refused | TTFT p50 / p95 / p99 ms | TBT p50 / p95 / p99 ms "
        "| goodput req/s | budget (TTFT / TBT ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for s in run.summaries:
            lines.append(
                f"| {run.name} | {s.endpoint} | {s.sent} | {s.completed} | {s.refused} ({_f(refused_pct(s), 1)}%) | "
                f"{_f(s.ttft_p50_ms)} / {_f(s.ttft_p95_ms)} / {_f(s.ttft_p99_ms)} | "
                f"{_f(s.tbt_p50_ms)} / {_f(s.tbt_p95_ms)} / {_f(s.tbt_p99_ms)} | {s.goodput_rps:.3f} | "
                f"{_f(s.budget_ttft_ms)} / {_f(s.budget_tbt_ms)} |")
    lines += ["", "| lanes: without / with the backlog | without | with | ratio | target |", "|---|---|---|---|---|"]
    for c in interference(runs):
        lines.append(f"| {c.what} | {_f(c.quiet)} | {_f(c.loaded)} | {_f(c.ratio, 2)} | {c.target} |")
    for c in refusals(runs):
        delta = None if c.quiet is None or c.loaded is None else c.loaded - c.quiet
        lines.append(f"| {c.what} | {_f(c.quiet, 1)} | {_f(c.loaded, 1)} | {_f(delta, 1)} points | {c.target} |")
    lines += ["", "| backlog | done | done after s | bulk out tok/s over the run | wall time s |",
              "|---|---|---|---|---|"]
    for run in runs:
        if run.burst is not None:
            b = run.burst
            rate = run.by_endpoint()[BULK].output_tokens_per_s if BULK in run.by_endpoint() else 0.0
            lines.append(f"| {run.name} | {b.num_done} / {b.num_sent} ({100 * b.share_done:.0f}%) | "
                         f"{_f(b.done_after_s)} | {rate:.1f} | {run.elapsed_s:.0f} |")
    return "\n".join(lines)


def verdicts(runs: Sequence[RunResult]) -> list[str]:
    """The issue's targets for the backlog scenarios, each with what was measured."""
    out = []
    for c in interference(runs):
        if c.target:
            ok = c.ratio is not None and c.ratio <= MAX_INTERFERENCE
            out.append(f"interference, {c.what}: {_f(c.loaded)} / {_f(c.quiet)} = {_f(c.ratio, 2)}x "
                       f"(target {c.target}) -> {'met' if ok else 'MISSED'}")
    for c in refusals(runs):
        if c.target and c.quiet is not None and c.loaded is not None:
            ok = c.loaded - c.quiet <= MAX_EXTRA_REFUSALS_POINTS
            out.append(f"{c.what}: {c.loaded:.1f} with the backlog vs {c.quiet:.1f} without "
                       f"(target {c.target}) -> {'met' if ok else 'MISSED'}")
    loaded = next((r for r in runs if r.name == LOADED), None)
    if loaded is not None and loaded.burst is not None:
        b = loaded.burst
        out.append(f"backlog finished under lanes: {b.num_done} / {b.num_sent} (target 100%) -> "
                   f"{'met' if b.num_done == b.num_sent else 'MISSED'}")
    rate = bulk_rate_vs_fcfs(runs)
    if rate is not None:
        out.append(f"bulk output tok/s over the run, lanes / global-fcfs = {rate:.2f} "
                   f"(target >= {MIN_BULK_RATE_VS_FCFS}) -> {'met' if rate >= MIN_BULK_RATE_VS_FCFS else 'MISSED'}")
    return out
