"""One policy's run in `laneway bench lanes`: what the runner produces and the report reads."""

from __future__ import annotations

from dataclasses import dataclass

from laneway.load.stats import EndpointSummary


@dataclass(frozen=True)
class RunResult:
    name: str
    policy: str
    elapsed_s: float
    summaries: list[EndpointSummary]

    def by_endpoint(self) -> dict[str, EndpointSummary]:
        return {s.endpoint: s for s in self.summaries}
