"""How fast a lane's queue empties: seconds of busy time per dispatched job, decayed.

Each batch adds its busy interval and its size to two exponentially decayed sums; their
ratio is the estimate. A batch's busy interval runs from when the lane became busy with
it (its oldest job arrived, or the previous batch left, whichever is later) to its
dispatch. So idle gaps between bursts never look like a slow lane, while a backlog
(windows, held-back backfill, no healthy worker) shows up as exactly the slowness a
newcomer would meet. Summing before dividing (rather than averaging per-batch ratios)
keeps several batches leaving in the same instant, after an outage, from reading as
"free": 20 jobs that left after 2 s of waiting are 0.1 s per job, whatever the batching.
"""

from __future__ import annotations

DECAY = 0.8  # weight kept by the past at each batch: roughly the last 5 batches count


class DrainRate:
    def __init__(self, decay: float = DECAY) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.last_dispatch_at: float | None = None
        self._busy_s = 0.0
        self._num_jobs = 0.0

    @property
    def seconds_per_job(self) -> float | None:
        """None until the first batch has left: nothing to predict from yet."""
        return self._busy_s / self._num_jobs if self._num_jobs else None

    def record(self, *, num_jobs: int, oldest_enqueued_at: float, now: float) -> None:
        if num_jobs <= 0:
            raise ValueError(f"a dispatched batch holds at least one job, got {num_jobs}")
        busy_since = oldest_enqueued_at
        if self.last_dispatch_at is not None:
            busy_since = max(busy_since, self.last_dispatch_at)
        # Batches leaving in one instant are one drain event: decay the past once, not per batch.
        decay = 1.0 if now == self.last_dispatch_at else self.decay
        self._busy_s = self._busy_s * decay + max(0.0, now - busy_since)
        self._num_jobs = self._num_jobs * decay + num_jobs
        self.last_dispatch_at = now
