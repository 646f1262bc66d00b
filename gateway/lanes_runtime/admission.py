"""Whether a job may join its lane's queue, decided at once on arrival.

A job is refused (429) rather than queued when the queue is full or when the wait it
would see is already predicted to break a budget: the lane's longest legal wait, the
endpoint's TTFT p95 budget, or the job's own deadline.

Two predictions, and the larger one counts. The lane queue's: jobs queued here times how
fast the lane dispatches. The workers': jobs queued here plus jobs already dispatched
that have not produced a first token (they wait in a worker's own queue, or prefill),
times how fast the lane's jobs reach their first token. A lane that dispatches at once
(no window, no backfill) never builds a gateway queue under overload, so only the second
prediction sees the backlog that forms inside the workers. Refusing now, with a Retry-After
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
                    now: float, num_unstarted: int = 0,
                    seconds_per_first_token: float | None = None) -> Refusal | None:
    """None admits. `seconds_per_job` is how fast the lane dispatches, `seconds_per_first_token`
    how fast its dispatched jobs start streaming (None: not measured yet); `num_unstarted`
    counts the lane's dispatched jobs still waiting for their first token."""
    if num_queued >= lane.max_queue_depth:
        return Refusal(QUEUE_FULL,
                       f"lane {lane_name!r} already holds {num_queued} queued requests "
                       f"(max_queue_depth {lane.max_queue_depth}); retry later",
                       retry_after_s=seconds_per_job or 0.0)  # about when the next slot frees
    if deadline is not None and deadline <= now:
        return Refusal(DEADLINE, "the request's deadline passed before it reached the lane queue",
                       retry_after_s=0.0)
    # An unmeasured rate predicts nothing (0 s): with neither measured, admit.
    lane_wait_s = num_queued * (seconds_per_job or 0.0)
    worker_wait_s = (num_queued + num_unstarted) * (seconds_per_first_token or 0.0)
    predicted_wait_s = max(lane_wait_s, worker_wait_s)
    if predicted_wait_s <= 0.0:
        return None
    num_ahead = num_queued + num_unstarted if worker_wait_s > lane_wait_s else num_queued
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
                   f"({num_ahead} requests ahead), over {what} ({budget_s * 1000:.0f} ms)",
                   retry_after_s=predicted_wait_s)
