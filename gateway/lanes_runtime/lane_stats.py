"""What one lane looks like right now, for /metrics and dashboards."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LaneStats:
    queue_depth: int
    window_ms: float  # the window new batches get (auto lanes: the controller's current choice)
    num_in_flight: int  # dispatched, not yet released
    num_dispatched: int
    num_refused: dict[str, int] = field(default_factory=dict)  # by reason: queue-full, budget, deadline
    last_batch_size: int = 0
    seconds_per_job: float | None = None  # drain rate behind admission; None until measured
    num_unstarted: int = 0  # dispatched, waiting for a first token (in a worker's queue or prefill)
    seconds_per_first_token: float | None = None  # how fast dispatched jobs start; None until measured
