"""The review table: one row per endpoint and lane, judged against the endpoint's budget.

Never one number for the whole run: each endpoint has its own budget, and a lane's batch
window is only legal where its endpoints' budgets allow it.

Column definitions (all percentiles nearest-rank, telemetry/percentile.py):
  queue p50/p95   gateway lane-queue wait of requests that left the queue
  TTFT p50/95/99  request received -> first token at the gateway, of requests that got one
  TBT p95         p95 over requests of each request's own p95 gap between chunks: "95% of
                  requests kept 95% of their gaps under this" (spans carry per-request
                  stats, not every gap)
  tokens/s        output tokens / (first arrival -> last end) of the row's requests
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from lanes.policy_model import Policy
from laneway.review.degrading_signal import first_degrading_signal, tokens_per_second
from laneway.review.request_row import RequestRow
from telemetry import attributes as attr
from telemetry.percentile import percentile

WITHIN = "within budget"
NO_BUDGET = "no budget"
NO_DATA = "no data"


@dataclass(frozen=True)
class EndpointReview:
    endpoint: str
    lane: str
    window_min_ms: float | None
    window_max_ms: float | None
    num_requests: int
    queue_p50_ms: float | None
    queue_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tbt_p95_ms: float | None
    tokens_per_s: float | None
    num_refused: int
    num_cancelled: int
    budget_ttft_ms: float | None
    budget_tbt_ms: float | None
    verdict: str
    over_budget_ms: float | None  # by how much the worse of TTFT/TBT p95 is over; None: not over
    degrading_signal: str | None  # only when over budget

    @property
    def window(self) -> str:
        if self.window_min_ms is None or self.window_max_ms is None:
            return "-"
        if self.window_min_ms == self.window_max_ms:
            return f"{self.window_min_ms:g} ms"
        return f"{self.window_min_ms:g}-{self.window_max_ms:g} ms"  # an auto window moved during the run


def review(rows: Sequence[RequestRow], policy: Policy | None) -> list[EndpointReview]:
    groups: dict[tuple[str, str], list[RequestRow]] = defaultdict(list)
    for row in rows:
        groups[(row.endpoint, row.lane)].append(row)
    return [_review_group(endpoint, lane, group, policy) for (endpoint, lane), group in sorted(groups.items())]


def _review_group(endpoint: str, lane: str, rows: list[RequestRow], policy: Policy | None) -> EndpointReview:
    waits = sorted(r.queue_wait_ms for r in rows if r.queue_wait_ms is not None)
    ttfts = sorted(r.ttft_ms for r in rows if r.ttft_ms is not None)
    tbts = sorted(r.tbt_p95_ms for r in rows if r.tbt_p95_ms is not None)
    windows = [r.batch_window_ms for r in rows if r.batch_window_ms is not None]
    spec = policy.endpoints.get(endpoint) if policy is not None else None
    budget_ttft = spec.slo.ttft_p95_ms if spec is not None else None
    budget_tbt = spec.slo.tbt_p95_ms if spec is not None else None
    ttft_p95 = _p(ttfts, 95)
    tbt_p95 = _p(tbts, 95)
    verdict, over = judge(ttft_p95, tbt_p95, budget_ttft, budget_tbt)
    return EndpointReview(
        endpoint=endpoint, lane=lane,
        window_min_ms=min(windows) if windows else None, window_max_ms=max(windows) if windows else None,
        num_requests=len(rows),
        queue_p50_ms=_p(waits, 50), queue_p95_ms=_p(waits, 95),
        ttft_p50_ms=_p(ttfts, 50), ttft_p95_ms=ttft_p95, ttft_p99_ms=_p(ttfts, 99),
        tbt_p95_ms=tbt_p95,
        tokens_per_s=tokens_per_second([r for r in rows if r.ttft_ms is not None]),
        num_refused=sum(1 for r in rows if r.outcome == attr.REFUSED),
        num_cancelled=sum(1 for r in rows if r.outcome == attr.CANCELLED),
        budget_ttft_ms=budget_ttft, budget_tbt_ms=budget_tbt,
        verdict=verdict, over_budget_ms=over,
        degrading_signal=first_degrading_signal(rows) if over is not None else None,
    )


def judge(ttft_p95: float | None, tbt_p95: float | None, budget_ttft: float | None,
          budget_tbt: float | None) -> tuple[str, float | None]:
    """(verdict text, ms over budget or None). Over budget when a p95 exceeds its budget."""
    if budget_ttft is None and budget_tbt is None:
        return NO_BUDGET, None
    if ttft_p95 is None:
        return NO_DATA, None
    overs = []
    if budget_ttft is not None and ttft_p95 > budget_ttft:
        overs.append((ttft_p95 - budget_ttft, "TTFT p95"))
    if budget_tbt is not None and tbt_p95 is not None and tbt_p95 > budget_tbt:
        overs.append((tbt_p95 - budget_tbt, "TBT p95"))
    if not overs:
        return WITHIN, None
    parts = ", ".join(f"{_ms(ms)} ms ({what})" for ms, what in overs)
    return f"over budget by {parts}", max(ms for ms, _ in overs)


def _p(values: list[float], q: float) -> float | None:
    return percentile(values, q) if values else None


def _ms(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"
