"""Per-endpoint summaries: throughput and latency side by side, never one score."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from telemetry.percentile import percentile as nearest_rank

if TYPE_CHECKING:  # annotations only: plans use these summaries without an HTTP client
    from laneway.load.client import RequestResult


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]) of unsorted values; None for no data."""
    return nearest_rank(sorted(values), q) if values else None


@dataclass(frozen=True)
class EndpointSummary:
    endpoint: str
    sent: int
    completed: int
    refused: int
    errors: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tbt_p50_ms: float | None
    tbt_p95_ms: float | None
    queue_wait_p50_ms: float | None
    queue_wait_p95_ms: float | None
    output_tokens_per_s: float
    goodput_rps: float  # completed within the endpoint's budget, per second of the run
    budget_ttft_ms: float | None
    budget_tbt_ms: float | None
    # Added for `laneway load`; defaults keep older constructors working.
    tbt_p99_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p95_ms: float | None = None
    completed_rps: float = 0.0
    send_lag_p50_ms: float | None = None  # actual send time - scheduled send time (generator accuracy)
    send_lag_p99_ms: float | None = None
    status_counts: dict[str, int] = field(default_factory=dict)  # "200", "429", "503", "none" (no response)

    def as_dict(self) -> dict:
        return asdict(self)


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000.0


def summarize(endpoint: str, results: list[RequestResult], duration_s: float, budget_ttft_ms: float | None,
              budget_tbt_ms: float | None) -> EndpointSummary:
    done = [r for r in results if r.ok]
    ttfts = [r.ttft_s for r in done if r.ttft_s is not None]
    tbts = [g for r in done for g in r.tbt_s]
    waits = [r.queue_wait_ms / 1000.0 for r in results if r.queue_wait_ms is not None]
    good = [r for r in done if _within(r, budget_ttft_ms, budget_tbt_ms)]
    lags = [r.sent_at - r.scheduled_at for r in results if r.status or r.error]  # sent, whatever came back
    return EndpointSummary(
        endpoint=endpoint,
        sent=len(results),
        completed=len(done),
        refused=sum(1 for r in results if r.status == 429),
        errors=sum(1 for r in results if not r.ok and r.status != 429),
        ttft_p50_ms=_ms(percentile(ttfts, 50)),
        ttft_p95_ms=_ms(percentile(ttfts, 95)),
        ttft_p99_ms=_ms(percentile(ttfts, 99)),
        tbt_p50_ms=_ms(percentile(tbts, 50)),
        tbt_p95_ms=_ms(percentile(tbts, 95)),
        queue_wait_p50_ms=_ms(percentile(waits, 50)),
        queue_wait_p95_ms=_ms(percentile(waits, 95)),
        output_tokens_per_s=sum(r.output_tokens for r in done) / duration_s if duration_s > 0 else 0.0,
        goodput_rps=len(good) / duration_s if duration_s > 0 else 0.0,
        budget_ttft_ms=budget_ttft_ms,
        budget_tbt_ms=budget_tbt_ms,
        tbt_p99_ms=_ms(percentile(tbts, 99)),
        e2e_p50_ms=_ms(percentile([r.e2e_s for r in done if r.e2e_s is not None], 50)),
        e2e_p95_ms=_ms(percentile([r.e2e_s for r in done if r.e2e_s is not None], 95)),
        completed_rps=len(done) / duration_s if duration_s > 0 else 0.0,
        send_lag_p50_ms=_ms(percentile(lags, 50)),
        send_lag_p99_ms=_ms(percentile(lags, 99)),
        status_counts=dict(sorted(Counter(str(r.status) if r.status else "none" for r in results).items())),
    )


def _within(r: RequestResult, budget_ttft_ms: float | None, budget_tbt_ms: float | None) -> bool:
    if budget_ttft_ms is not None and (r.ttft_s is None or r.ttft_s * 1000.0 > budget_ttft_ms):
        return False
    if budget_tbt_ms is not None and r.tbt_s:
        p95 = percentile(r.tbt_s, 95)
        if p95 is not None and p95 * 1000.0 > budget_tbt_ms:
            return False
    return True
