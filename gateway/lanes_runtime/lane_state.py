"""One lane at run time: its spec, queue, window, drain rate, counters and wake-up signal.

The spec is replaced on policy reload; queued jobs stay. Which queued job leaves next is
`next_waiter`: fair queuing between tenants (fair_share.py) or first come, first served,
as the lane's `fairness` says, among the tenants not held back by a cap. A batch is the first
`max_batch_size` waiting jobs; it is ready when it is full, when the window of its first
job has passed, or when a member's deadline arrives (waiting longer for company would
only expire it).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from gateway.lanes_runtime.drain_rate import DrainRate
from gateway.lanes_runtime.fair_share import VirtualCounters
from gateway.lanes_runtime.lane_queue import LaneQueue, Waiter
from gateway.lanes_runtime.lane_stats import LaneStats
from gateway.lanes_runtime.window_controller import WindowController
from lanes.lane import FCFS, LaneSpec


class LaneState:
    def __init__(self, name: str, spec: LaneSpec) -> None:
        self.name = name
        self.spec = spec
        self.queue = LaneQueue()
        self.counters = VirtualCounters()  # tenants' service in this lane (fair queuing)
        self.window = WindowController(spec.batch_window)
        self.rate = DrainRate()  # dispatches: how fast the lane queue empties
        self.start_rate = DrainRate()  # first tokens: how fast dispatched jobs start streaming
        self.unstarted: dict[str, float] = {}  # dispatched, no first token yet: request id -> dispatched at,
        # in dispatch order
        self.wakeup = asyncio.Event()  # arrivals, cancellations, reloads: the flusher re-plans
        self.flusher: asyncio.Task[None] | None = None
        self.in_flight_ids: set[str] = set()
        self.num_dispatched = 0
        self.num_completed = 0
        self.num_refused: Counter[str] = Counter()
        self.last_batch_size = 0
        self.last_arrival_at: float | None = None

    def update_spec(self, spec: LaneSpec) -> None:
        self.spec = spec
        self.window = self.window.retuned(spec.batch_window)
        self.wakeup.set()

    @property
    def window_s(self) -> float:
        return self.window.current_ms / 1000.0

    def window_for_arrival(self, now: float) -> float:
        """The window a job arriving now may wait for company (and records the arrival).

        A window buys requests a shared dispatch and prefill. One that finds its lane idle
        (nothing queued, the last arrival more than a window ago) has no company in sight,
        and a worker batches running requests step by step whatever the gateway does; unless
        the lane waits when idle (LaneSpec.wait_when_idle: bulk lanes by default), it leaves
        at once. The window is a most, not a least: waiting it out would cost a lone chat
        request its whole window of TTFT (10 ms on the default policy)."""
        last, self.last_arrival_at = self.last_arrival_at, now
        if self.spec.waits_when_idle or self.has_waiting:
            return self.window_s
        if last is not None and now - last < self.window_s:
            return self.window_s  # arrivals closer than a window: company is likely
        return 0.0

    @property
    def has_waiting(self) -> bool:
        return self.queue.head() is not None

    def ready_at(self) -> float | None:
        """When the forming batch may leave (None: nothing is waiting)."""
        head = self.queue.head()
        if head is None:
            return None
        members = list(self.queue.first(self.spec.max_batch_size))
        if len(members) >= self.spec.max_batch_size:
            return head.enqueued_at  # full: leaves at once
        deadlines = [w.job.deadline for w in members if w.job.deadline is not None]
        return min([head.enqueued_at + head.window_s, *deadlines])

    def next_waiter(self, can_take: Callable[[str], bool]) -> Waiter | None:
        """The job that leaves next, among tenants `can_take` (not at a cap); None: none may."""
        heads = [w for w in self.queue.tenant_heads() if can_take(w.job.tenant)]
        if not heads:
            return None
        if self.spec.fairness == FCFS:
            return min(heads, key=lambda w: w.seq)
        tenant = self.counters.pick([w.job.tenant for w in heads])
        return next(w for w in heads if w.job.tenant == tenant)

    def jobs_ahead_of(self, tenant: str) -> int:
        """Queued jobs that would leave before a new job of `tenant`: all of them first come,
        first served; under fair queuing about one round per job the tenant already has queued,
        a job of each backlogged tenant per round (weights aside), never more than the queue."""
        num_queued = len(self.queue)
        if self.spec.fairness == FCFS:
            return num_queued
        num_tenants = len(self.queue.tenant_heads())
        return min(num_queued, (self.queue.num_queued_of(tenant) + 1) * max(1, num_tenants))

    def next_timer(self, now: float) -> float | None:
        """The next moment this lane's own clock matters: its window closing or a deadline."""
        times = [t for t in (self.ready_at(), self.queue.earliest_deadline()) if t is not None and t > now]
        return min(times, default=None)

    def mark_started(self, request_id: str, now: float) -> None:
        """A dispatched job produced its first token: one more sample of the start rate."""
        if request_id not in self.unstarted:
            return
        # Busy since the oldest job still waiting to start, like DrainRate's batches. Jobs are
        # added in dispatch order, so the dict's first entry is the oldest.
        oldest = next(iter(self.unstarted.values()))
        dispatched_at = self.unstarted.pop(request_id)
        last_start = self.start_rate.last_dispatch_at
        if not self.unstarted and (last_start is None or last_start <= dispatched_at):
            # It waited behind no other start: its time to first token is one request's
            # latency, not how fast a backlog drains. Workers prefill a burst's prompts
            # together, so a lone 60 ms start read as a rate would predict 1 s for 17
            # requests that in fact start within a step or two, and refuse them.
            return
        self.start_rate.record(num_jobs=1, oldest_enqueued_at=oldest, now=now)

    def stats(self) -> LaneStats:
        return LaneStats(
            queue_depth=len(self.queue),
            window_ms=self.window.current_ms,
            num_in_flight=len(self.in_flight_ids),
            num_dispatched=self.num_dispatched,
            num_refused=dict(self.num_refused),
            last_batch_size=self.last_batch_size,
            seconds_per_job=self.rate.seconds_per_job,
            num_unstarted=len(self.unstarted),
            seconds_per_first_token=self.start_rate.seconds_per_job,
        )
