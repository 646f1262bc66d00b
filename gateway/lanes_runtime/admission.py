"""Whether a job may join its lane's queue, decided at once on arrival.

A job is refused (429) rather than queued when the queue is full or when the wait it
would see is already predicted to break a budget: the lane's longest legal wait, the
endpoint's TTFT p95 budget, or the job's own deadline.

Three predictions, and the largest one counts. The lane queue's: jobs queued here times how
fast the lane dispatches. The start rate's: jobs queued here plus jobs already dispatched
that have not produced a first token (they wait in a worker's own queue, or prefill),
times how fast the lane's jobs reach their first token while they queue behind each other
(a lone request's start is its latency, not a rate: lane_state.py). A lane that dispatches at once
(no window, no backfill) never builds a gateway queue under overload, so only the second
prediction sees the backlog that forms inside the workers. The workers' own: the wait the
best placed worker predicts for the lane by its cost model (its load report), plus the lane
queue's wait. Refusing now, with a Retry-After the client can act on, beats admitting work
that is doomed to expire in the queue.

Only work that would really go first counts: the job's own lane (the first two count
nothing else), and on the workers its own lane and more urgent lanes that cannot be
preempted. Work of preemptible lanes (bulk) is capacity a worker takes back when a latency
request arrives, never a reason to refuse one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.job import WorkerLoad
from lanes.endpoint import EndpointSpec
from lanes.lane import LaneSpec

QUEUE_FULL = "queue-full"
TENANT_QUEUE_FULL = "tenant-queue-full"
BUDGET = "budget"
DEADLINE = "deadline"


@dataclass(frozen=True)
class Refusal:
    reason: str  # QUEUE_FULL, TENANT_QUEUE_FULL, BUDGET or DEADLINE: the x-laneway-reject-reason header
    message: str
    retry_after_s: float


@dataclass(frozen=True)
class Backlog:
    """What a new job of one lane would find ahead of it."""

    num_queued: int = 0  # in this lane's gateway queue
    seconds_per_job: float | None = None  # how fast the lane dispatches; None: not measured yet
    num_unstarted: int = 0  # the lane's dispatched jobs still waiting for their first token
    seconds_per_first_token: float | None = None  # how fast they start streaming; None: not measured
    worker_loads: tuple[WorkerLoad, ...] = ()  # the healthy workers' last load reports


@dataclass(frozen=True)
class Prediction:
    wait_s: float
    why: str  # what it counted, for the refusal message


def check_admission(*, lane_name: str, lane: LaneSpec, endpoint_name: str, endpoint: EndpointSpec | None,
                    backlog: Backlog, deadline: float | None, now: float) -> Refusal | None:
    """None admits."""
    if backlog.num_queued >= lane.max_queue_depth:
        return Refusal(QUEUE_FULL,
                       f"lane {lane_name!r} already holds {backlog.num_queued} queued requests "
                       f"(max_queue_depth {lane.max_queue_depth}); retry later",
                       retry_after_s=backlog.seconds_per_job or 0.0)  # about when the next slot frees
    if deadline is not None and deadline <= now:
        return Refusal(DEADLINE, "the request's deadline passed before it reached the lane queue",
                       retry_after_s=0.0)
    predicted = predict_wait(lane_name, lane, backlog)
    if predicted.wait_s <= 0.0:
        return None
    budgets = [(lane.max_queue_wait_ms / 1000.0, f"lane {lane_name!r} max_queue_wait_ms")]
    if endpoint is not None and endpoint.slo.ttft_p95_ms is not None:
        budgets.append((endpoint.slo.ttft_p95_ms / 1000.0, f"endpoint {endpoint_name!r} slo.ttft_p95_ms"))
    if deadline is not None:
        budgets.append((deadline - now, "the request's deadline"))
    budget_s, what = min(budgets)
    if predicted.wait_s <= budget_s:
        return None
    return Refusal(BUDGET,
                   f"predicted queue wait in lane {lane_name!r} is {predicted.wait_s * 1000:.0f} ms "
                   f"({predicted.why}), over {what} ({budget_s * 1000:.0f} ms)",
                   retry_after_s=predicted.wait_s)


def check_tenant_queue(*, tenant: str, lane_name: str, cap: int | None, num_queued: int,
                       seconds_per_job: float | None) -> Refusal | None:
    """A tenant's own cap on its queued requests in one lane (tenants.NAME.max_queued_per_lane):
    one tenant's burst fills its own share of the queue, not the lane's whole depth."""
    if cap is None or num_queued < cap:
        return None
    return Refusal(TENANT_QUEUE_FULL,
                   f"tenant {tenant!r} already has {num_queued} requests queued in lane {lane_name!r} "
                   f"(tenants.{tenant}.max_queued_per_lane {cap}); retry later",
                   retry_after_s=seconds_per_job or 1.0)


def predict_wait(lane_name: str, lane: LaneSpec, backlog: Backlog) -> Prediction:
    """The largest of the three predictions. An unmeasured rate predicts nothing (0 s), as
    does a worker without a cost model (it reports 0 ms)."""
    b = backlog
    lane_wait_s = b.num_queued * (b.seconds_per_job or 0.0)
    start_wait_s = (b.num_queued + b.num_unstarted) * (b.seconds_per_first_token or 0.0)
    reported_s = workers_wait_s(b.worker_loads, lane_name, lane)
    reported_wait_s = reported_s + lane_wait_s if reported_s is not None else 0.0
    return max(
        Prediction(lane_wait_s, f"{b.num_queued} requests ahead"),
        Prediction(start_wait_s, f"{b.num_queued + b.num_unstarted} requests ahead"),
        Prediction(reported_wait_s, f"the least busy worker predicts {(reported_s or 0.0) * 1000:.0f} ms "
                                    f"before it starts, and {b.num_queued} requests are queued here"),
        key=lambda p: p.wait_s)  # on a tie, the first: the simplest explanation


def workers_wait_s(loads: Sequence[WorkerLoad], lane_name: str, lane: LaneSpec) -> float | None:
    """The smallest wait any worker predicts for a new job of this lane (where it would most
    likely go); None when no worker reports. On each worker the wait is the longest predicted
    among its own lane and the more urgent lanes that cannot be preempted: each lane's figure
    already includes the lanes more urgent than it, and preemptible lanes never count (the
    worker pushes them aside). A worker without this lane's work counts the lanes ahead of it."""
    if not loads:
        return None
    waits = []
    for load in loads:
        ahead = [other.predicted_wait_ms for other in load.lanes if other.name == lane_name
                 or (other.priority <= lane.priority and not other.preemptible)]
        waits.append(max(ahead, default=0.0) / 1000.0)
    return min(waits)
