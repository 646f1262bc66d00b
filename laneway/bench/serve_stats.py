"""One concurrency level of `laneway bench serve`, reduced to the table's numbers (pure).

Per stream, the decode rate is (tokens - 1) / (last token - first token): the rate a reader
sees once the first token is there, so TTFT (queueing and prefill) is reported on its own.
Aggregate is every output token of the level over the level's wall time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from telemetry.percentile import percentile


@dataclass(frozen=True)
class StreamSample:
    ttft_s: float
    first_token_s: float  # since the request was sent
    last_token_s: float
    output_tokens: int
    # Between consecutive arrivals of output (an SSE event or gRPC message, which may carry
    # several tokens): the gaps a reader sees, what an endpoint's TBT target is about.
    gaps_s: tuple[float, ...] = ()

    @property
    def decode_tok_s(self) -> float | None:
        span = self.last_token_s - self.first_token_s
        return (self.output_tokens - 1) / span if self.output_tokens > 1 and span > 0 else None


@dataclass(frozen=True)
class LevelResult:
    system: str
    concurrency: int
    num_requests: int
    num_failed: int
    wall_s: float
    failures: dict[str, int]  # reason (HTTP status and reject reason, gRPC code) -> count
    per_stream_tok_s: float | None  # median over streams
    aggregate_tok_s: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_p99_s: float | None
    e2e_p50_s: float | None
    # Per request, the mean time between tokens (1 / its decode rate); percentiles over requests.
    tpot_p50_s: float | None = None
    tpot_p99_s: float | None = None
    gap_p95_s: float | None = None  # over every gap between arrivals of the level's streams


def summarize_level(system: str, concurrency: int, samples: Sequence[StreamSample],
                    failures: dict[str, int], wall_s: float) -> LevelResult:
    if wall_s <= 0:
        raise ValueError(f"wall time must be positive, got {wall_s}")
    rates = [r for s in samples if (r := s.decode_tok_s) is not None]
    ttfts = sorted(s.ttft_s for s in samples)
    e2e = [s.last_token_s for s in samples]
    tpots = sorted(1.0 / r for r in rates)
    gaps = sorted(g for s in samples for g in s.gaps_s)
    return LevelResult(
        system=system, concurrency=concurrency, num_requests=len(samples) + sum(failures.values()),
        num_failed=sum(failures.values()), failures=dict(failures), wall_s=wall_s,
        per_stream_tok_s=statistics.median(rates) if rates else None,
        aggregate_tok_s=sum(s.output_tokens for s in samples) / wall_s,
        ttft_p50_s=percentile(ttfts, 50) if ttfts else None, ttft_p95_s=percentile(ttfts, 95) if ttfts else None,
        ttft_p99_s=percentile(ttfts, 99) if ttfts else None,
        e2e_p50_s=statistics.median(e2e) if e2e else None,
        tpot_p50_s=percentile(tpots, 50) if tpots else None, tpot_p99_s=percentile(tpots, 99) if tpots else None,
        gap_p95_s=percentile(gaps, 95) if gaps else None,
    )


def median_of_runs(runs: Sequence[LevelResult]) -> LevelResult:
    """The median of each number across repeated runs of one system at one level."""
    if not runs:
        raise ValueError("no runs to take the median of")

    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    first = runs[0]
    failures: dict[str, int] = {}
    for r in runs:
        for reason, n in r.failures.items():
            failures[reason] = failures.get(reason, 0) + n
    return LevelResult(
        system=first.system, concurrency=first.concurrency, num_requests=sum(r.num_requests for r in runs),
        num_failed=sum(r.num_failed for r in runs), failures=failures, wall_s=statistics.median(r.wall_s for r in runs),
        per_stream_tok_s=med([r.per_stream_tok_s for r in runs]),
        aggregate_tok_s=statistics.median(r.aggregate_tok_s for r in runs),
        ttft_p50_s=med([r.ttft_p50_s for r in runs]), ttft_p95_s=med([r.ttft_p95_s for r in runs]),
        ttft_p99_s=med([r.ttft_p99_s for r in runs]), e2e_p50_s=med([r.e2e_p50_s for r in runs]),
        tpot_p50_s=med([r.tpot_p50_s for r in runs]), tpot_p99_s=med([r.tpot_p99_s for r in runs]),
        gap_p95_s=med([r.gap_p95_s for r in runs]),
    )
