"""`laneway bench tenants`: the arithmetic and the report, pure (no processes, no clock).

Lane part: the quiet tenant's TTFT beside the noisy one over its TTFT alone (the
interference ratio; the issue's target is <= 1.5x under fair queuing), and the noisy
tenant's output tokens/s while the quiet one ran (what it kept of the lane).

Batch part: both batches' request counts, polled; from them, when the small batch's first
and last lines were answered after it was submitted, and each tenant's share of the lines
answered while both batches had lines left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from laneway.bench.backlog_report import ratio
from laneway.load.client import RequestResult
from laneway.load.stats import EndpointSummary

MAX_QUIET_RATIO = 1.5  # quiet TTFT p95 beside the noisy tenant / alone, under fair queuing
ALONE = "quiet alone"


@dataclass(frozen=True)
class LaneRun:
    name: str  # ALONE, "fair + noisy", "fcfs + noisy"
    policy: str
    quiet: EndpointSummary
    noisy: EndpointSummary | None  # None: the noisy tenant did not run
    noisy_tokens_per_s: float | None  # over the quiet tenant's window; None: no noisy tenant
    quiet_tokens_per_s: float


def tokens_per_s_in_window(results: Sequence[RequestResult], start_s: float, end_s: float) -> float:
    """Output tokens of the requests that finished inside [start_s, end_s), per second of it.
    A closed loop keeps finishing requests at the rate it is served, so over a window of
    many requests this is its throughput there, without the ramp-up and the drain."""
    if end_s <= start_s:
        return 0.0
    tokens = sum(r.output_tokens for r in results
                 if r.ok and r.finished_at is not None and start_s <= r.finished_at < end_s)
    return tokens / (end_s - start_s)


def quiet_ratio(run: LaneRun, alone: LaneRun, field: str = "ttft_p95_ms") -> float | None:
    """The quiet tenant's TTFT percentile in `run` over the same in the run alone."""
    return ratio(getattr(run.quiet, field), getattr(alone.quiet, field))


@dataclass(frozen=True)
class Sample:
    """Both batches' answered lines (completed + failed) at `at_s` (seconds since the big batch
    was submitted); `small` is None before the small batch exists."""

    at_s: float
    big: int
    small: int | None


@dataclass(frozen=True)
class BatchOutcome:
    small_total: int
    small_submitted_s: float  # after the big batch's submission
    first_after_s: float | None  # small batch's first answered line, after its submission; None: none
    last_after_s: float | None  # its last; None: not all answered within the window
    big_lines_while_both: int  # answered from the small batch's submission to its end (or the window's)
    small_lines_while_both: int
    both_s: float  # how long that lasted
    # The same from the poll before its first answered line: without the ramp-up, while the
    # big batch's lines already running finish and free the slots the small one then gets.
    big_lines_once_running: int = 0
    small_lines_once_running: int = 0

    @property
    def small_share(self) -> float | None:
        return _share(self.small_lines_while_both, self.big_lines_while_both)

    @property
    def small_share_once_running(self) -> float | None:
        return _share(self.small_lines_once_running, self.big_lines_once_running)


def _share(small: int, big: int) -> float | None:
    return small / (small + big) if small + big else None


def batch_outcome(samples: Sequence[Sample], small_submitted_s: float, small_total: int) -> BatchOutcome:
    """Read the polled counts. Times are those of the first poll that saw the change, so
    they are late by up to one poll interval."""
    after = [s for s in samples if s.small is not None and s.at_s >= small_submitted_s]
    first = next((s.at_s - small_submitted_s for s in after if s.small), None)
    done = next((s for s in after if s.small is not None and s.small >= small_total), None)
    last = None if done is None else done.at_s - small_submitted_s
    if not after:
        return BatchOutcome(small_total, small_submitted_s, None, None, 0, 0, 0.0)
    end = done or after[-1]
    before = max((s for s in samples if s.at_s <= small_submitted_s), key=lambda s: s.at_s, default=after[0])
    first_seen = next((i for i, s in enumerate(after) if s.small), None)
    ramped = after[max(0, first_seen - 1)] if first_seen is not None else end
    return BatchOutcome(small_total, small_submitted_s, first, last,
                        big_lines_while_both=end.big - before.big,
                        small_lines_while_both=(end.small or 0) - (before.small or 0),
                        both_s=end.at_s - small_submitted_s,
                        big_lines_once_running=end.big - ramped.big,
                        small_lines_once_running=(end.small or 0) - (ramped.small or 0))


def expected_small_share(big_weight: float, small_weight: float, small_total: int, concurrency: int) -> float:
    """The share of answered lines weighted round robin gives the small batch while both have
    lines (equal line lengths): its weight's share of the slots, but no more slots than it
    has lines."""
    slots = concurrency * small_weight / (big_weight + small_weight)
    return min(slots, small_total, concurrency) / concurrency


def _f(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_lane_markdown(runs: Sequence[LaneRun]) -> list[str]:
    alone = next((r for r in runs if r.name == ALONE), None)
    lines = ["| run | quiet sent / done | quiet TTFT p50 / p95 ms | p95 / alone | p50 / alone "
             "| quiet gateway queue wait p50 / p95 ms | quiet TBT p50 / p95 ms | noisy done | noisy out tok/s "
             "| quiet out tok/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        q = r.quiet
        p95 = quiet_ratio(r, alone) if alone is not None else None
        p50 = quiet_ratio(r, alone, "ttft_p50_ms") if alone is not None else None
        noisy_done = "-" if r.noisy is None else f"{r.noisy.completed} / {r.noisy.sent}"
        lines.append(f"| {r.name} | {q.sent} / {q.completed} | {_f(q.ttft_p50_ms)} / {_f(q.ttft_p95_ms)} | "
                     f"{_f(p95, 2)}x | {_f(p50, 2)}x | {_f(q.queue_wait_p50_ms)} / {_f(q.queue_wait_p95_ms)} | "
                     f"{_f(q.tbt_p50_ms)} / {_f(q.tbt_p95_ms)} | {noisy_done} | "
                     f"{_f(r.noisy_tokens_per_s, 1)} | {r.quiet_tokens_per_s:.1f} |")
    return lines


def lane_verdicts(runs: Sequence[LaneRun], fair: str, fcfs: str) -> list[str]:
    by = {r.name: r for r in runs}
    alone = by.get(ALONE)
    out: list[str] = []
    if alone is None:
        return out
    if fair in by:
        r = quiet_ratio(by[fair], alone)
        ok = r is not None and r <= MAX_QUIET_RATIO
        out.append(f"quiet TTFT p95 beside noisy / alone, fair queuing: {_f(r, 2)}x "
                   f"(target <= {MAX_QUIET_RATIO}x) -> {'met' if ok else 'MISSED'}")
    if fcfs in by:
        out.append(f"quiet TTFT p95 beside noisy / alone, FCFS: {_f(quiet_ratio(by[fcfs], alone), 2)}x "
                   "(the baseline: expected far worse)")
    if fair in by and fcfs in by:
        a, b = by[fair].noisy_tokens_per_s, by[fcfs].noisy_tokens_per_s
        out.append(f"noisy out tok/s, fair / FCFS: {_f(ratio(a, b), 2)} (it keeps the capacity left)")
    return out


def render_batch_markdown(outcomes: Sequence[tuple[str, BatchOutcome, float]]) -> list[str]:
    """One row per (gateways, outcome, the small batch's share by weight)."""
    lines = ["| gateways | small batch submitted at s | its first line after s | its last line after s "
             "| answered since its submission: big / small (small's share) | from its first line: big / small "
             "(share) | share by weight |",
             "|---|---|---|---|---|---|---|"]
    for name, o, expected in outcomes:
        lines.append(f"| {name} | {o.small_submitted_s:.1f} | {_f(o.first_after_s, 1)} | "
                     f"{_f(o.last_after_s, 1)} (of {o.small_total}) | {o.big_lines_while_both} / "
                     f"{o.small_lines_while_both} ({_pct(o.small_share)}) | {o.big_lines_once_running} / "
                     f"{o.small_lines_once_running} ({_pct(o.small_share_once_running)}) | {_pct(expected)} |")
    return lines


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"
