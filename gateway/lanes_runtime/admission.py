"""Whether a job may join its lane's queue, decided at once on arrival.

A job is refused (429) rather than queued when the queue is full or when the wait it
would see is already predicted to break a budget: the lane's longest legal wait, the
endpoint's TTFT p95 budget, or the job's own deadline. Refusing now, with a Retry-After
the client can act on, beats admitting work that is doomed to expire in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanes.endpoint import EndpointSpec
from lanes.lane import LaneSpec

QUEUE_FULL = "queue-full"
BUDGET = "budget"
DEADLINE = "deadline"


@dataclass(frozen=True)
class Refusal:
    reason: str  # QUEUE_FULL, BUDGET or DEADLINE: the x-laneway-reject-reason header
    message: str
    retry_after_s: float


def check_admission(*, lane_name: str, lane: LaneSpec, endpoint_name: str, endpoint: EndpointSpec | None,
                    num_queued: int, seconds_per_job: float | None, deadline: float | None,
                    now: float) -> Refusal | None:
    """None admits. `seconds_per_job` is how fast the lane drains (None: not measured yet)."""
    if num_queued >= lane.max_queue_depth:
        return Refusal(QUEUE_FULL,
                       f"lane {lane_name!r} already holds {num_queued} queued requests "
                       f"(max_queue_depth {lane.max_queue_depth}); retry later",
                       retry_after_s=seconds_per_job or 0.0)  # about when the next slot frees
    if deadline is not None and deadline <= now:
        return Refusal(DEADLINE, "the request's deadline passed before it reached the lane queue",
                       retry_after_s=0.0)
    if seconds_per_job is None:
        return None  # no batch has left this lane yet: nothing to predict from, so admit
    predicted_wait_s = num_queued * seconds_per_job
    budgets = [(lane.max_queue_wait_ms / 1000.0, f"lane {lane_name!r} max_queue_wait_ms")]
    if endpoint is not None and endpoint.slo.ttft_p95_ms is not None:
        budgets.append((endpoint.slo.ttft_p95_ms / 1000.0, f"endpoint {endpoint_name!r} slo.ttft_p95_ms"))
    if deadline is not None:
        budgets.append((deadline - now, "the request's deadline"))
    budget_s, what = min(budgets)
    if predicted_wait_s <= budget_s:
        return None
    return Refusal(BUDGET,
                   f"predicted queue wait in lane {lane_name!r} is {predicted_wait_s * 1000:.0f} ms "
                   f"({num_queued} requests ahead), over {what} ({budget_s * 1000:.0f} ms)",
                   retry_after_s=predicted_wait_s)
