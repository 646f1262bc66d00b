"""Which signal degraded first, for an endpoint that is over budget.

The lesson of batching reviews: queue wait rises before tokens/s looks bad. So the run
is cut in two halves by request arrival time and the halves compared: queue wait p95
first (the lane is spending more time than before), then TTFT p95 with a flat queue
(the time went into the worker, not the lane), then tokens/s. Two halves cannot order
signals that moved together, so when queue wait and tokens/s both moved, both are named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from laneway.review.request_row import RequestRow
from telemetry.percentile import percentile

RISE = 1.2  # a p95 up by 20% ...
MIN_RISE_MS = 1.0  # ... and by at least 1 ms has risen
FALL = 0.9  # tokens/s down by 10% has fallen
MIN_PER_HALF = 2  # requests with a first token in each half


@dataclass(frozen=True)
class HalfStats:
    queue_p95_ms: float | None
    ttft_p95_ms: float | None
    tokens_per_s: float | None


def half_stats(rows: Sequence[RequestRow]) -> HalfStats:
    waits = sorted(r.queue_wait_ms for r in rows if r.queue_wait_ms is not None)
    ttfts = sorted(r.ttft_ms for r in rows if r.ttft_ms is not None)
    return HalfStats(queue_p95_ms=percentile(waits, 95) if waits else None,
                     ttft_p95_ms=percentile(ttfts, 95) if ttfts else None,
                     tokens_per_s=tokens_per_second(rows))


def tokens_per_second(rows: Sequence[RequestRow]) -> float | None:
    """Output tokens over the wall time the requests spanned (first arrival to last end)."""
    if not rows:
        return None
    span_s = max(r.end_s for r in rows) - min(r.start_s for r in rows)
    return sum(r.output_tokens for r in rows) / span_s if span_s > 0 else None


def split_halves(rows: Sequence[RequestRow]) -> tuple[list[RequestRow], list[RequestRow]]:
    first_s = min(r.start_s for r in rows)
    mid_s = first_s + (max(r.start_s for r in rows) - first_s) / 2.0
    return [r for r in rows if r.start_s < mid_s], [r for r in rows if r.start_s >= mid_s]


def first_degrading_signal(rows: Sequence[RequestRow]) -> str:
    if not rows:
        return "no requests"
    early, late = split_halves(rows)
    if min(sum(1 for r in half if r.ttft_ms is not None) for half in (early, late)) < MIN_PER_HALF:
        return "too few requests in each half of the run to see a trend"
    a, b = half_stats(early), half_stats(late)
    queue_rose = _rose(a.queue_p95_ms, b.queue_p95_ms)
    tps_fell = _fell(a.tokens_per_s, b.tokens_per_s)
    tps = f"{_num(a.tokens_per_s)} -> {_num(b.tokens_per_s)} tok/s"
    if queue_rose:
        also = f"tokens/s fell too ({tps})" if tps_fell else f"tokens/s held ({tps})"
        return f"queue wait rising: p95 {_num(a.queue_p95_ms)} -> {_num(b.queue_p95_ms)} ms while {also}"
    if _rose(a.ttft_p95_ms, b.ttft_p95_ms):
        return (f"TTFT rising with queue wait flat: p95 {_num(a.ttft_p95_ms)} -> {_num(b.ttft_p95_ms)} ms "
                f"(queue p95 {_num(a.queue_p95_ms)} -> {_num(b.queue_p95_ms)} ms): the time goes to the worker")
    if tps_fell:
        return f"tokens/s falling: {tps}"
    return "no signal moved between the halves of the run: over budget from the start"


def _rose(before: float | None, after: float | None) -> bool:
    return before is not None and after is not None and after > before * RISE and after - before >= MIN_RISE_MS


def _fell(before: float | None, after: float | None) -> bool:
    return before is not None and after is not None and after < before * FALL


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"
