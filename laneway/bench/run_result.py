"""One policy's run in `laneway bench lanes`: what the runner produces and the report reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from laneway.load.stats import EndpointSummary

if TYPE_CHECKING:
    from laneway.bench.backlog_report import BurstOutcome


@dataclass(frozen=True)
class RunResult:
    name: str
    policy: str
    elapsed_s: float
    summaries: list[EndpointSummary]
    burst: BurstOutcome | None = None  # how the backlog fared, in runs that had one

    def by_endpoint(self) -> dict[str, EndpointSummary]:
        return {s.endpoint: s for s in self.summaries}
