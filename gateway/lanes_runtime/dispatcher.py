"""The lane dispatcher: per-lane queues with batch windows and budgets in front of the workers.

The rule, stated once: a job joins its lane's queue only if the wait it would see fits
every budget it carries; it then waits at most for its batch to close (full, window
passed, or a member's deadline reached) and leaves with that batch to the one worker
picked for the batch's first job. Whenever anything changes (an arrival, a departure, a
closing window, the pool, a tick), `_pump()` dispatches every ready batch, lanes in
priority order, backfill lanes last and only into the workers' bulk headroom (the step time
their latency work leaves, `pool.backfill_capacity()`), then refuses jobs whose deadline has
passed. Inside a lane, the next job to leave is the lane's choice (`LaneState.next_waiter`:
fair queuing between tenants, or first come, first served), skipping tenants at their
`max_concurrent`. A fair lane that is not a backfill lane is not held here for free worker
slots: the queue of a saturated lane forms in the worker, which orders it by the same fair
shares (the tenant and its weight travel with each request; workers/engine/tenant_shares.py)
and hands an under-served tenant a slot at once, where a hold here would learn of freed
slots only from periodic load reports. `_pump()` never awaits, so no lane ever waits for
another lane's work: a long bulk queue cannot delay an interactive batch.

Tasks: one flusher per lane (sleeps until that lane's window closes or a deadline
arrives) and one pool watcher (wakes on `pool.changed` or every `TICK_S`). Only the
watcher clears `pool.changed`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from gateway.errors import APIError, refused, unavailable
from gateway.job import Job, WorkerLoad
from gateway.lanes_runtime.admission import (
    DEADLINE,
    Backlog,
    Refusal,
    check_admission,
    check_tenant_queue,
    predict_wait,
)
from gateway.lanes_runtime.clock import Clock, SystemClock, wait_for_event
from gateway.lanes_runtime.fair_share import JobCost
from gateway.lanes_runtime.lane_queue import Waiter
from gateway.lanes_runtime.lane_state import LaneState
from gateway.lanes_runtime.lane_stats import LaneStats
from lanes.policy_model import Policy

if TYPE_CHECKING:
    from gateway.worker_client import WorkerClient

log = logging.getLogger(__name__)

TICK_S = 0.1  # backfill re-checks the workers' headroom at least this often, even if nothing signals
NO_WORKER_RETRY_S = 2.0  # Retry-After when no worker is healthy: about a supervisor's restart


class WorkerSource(Protocol):
    """What the dispatcher needs from gateway.worker_pool.WorkerPool."""

    changed: asyncio.Event

    def pick(self, job: Job, exclude: Iterable[WorkerClient] = ()) -> WorkerClient | None: ...

    def backfill_capacity(self) -> int: ...

    def loads(self) -> list[WorkerLoad]: ...

    def has_healthy_worker(self) -> bool: ...


class LaneDispatcher:
    def __init__(self, policy: Policy, pool: WorkerSource, clock: Clock | None = None) -> None:
        self.policy = policy
        self.pool = pool
        self.clock: Clock = clock or SystemClock()
        self._lanes = {name: LaneState(name, spec) for name, spec in policy.lanes.items()}
        self._watcher: asyncio.Task[None] | None = None
        self._is_closed = False
        self._num_running_of: Counter[str] = Counter()  # tenant -> dispatched, not released (all lanes)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._ensure_tasks()

    async def close(self) -> None:
        """Stop the tasks; jobs still queued are told the gateway is going away (503)."""
        self._is_closed = True
        tasks = [t for t in (self._watcher, *(lane.flusher for lane in self._lanes.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes.values():
            for waiter in lane.queue.drain():
                waiter.future.set_exception(unavailable("the gateway is shutting down; retry", retry_after_s=1))

    def update_policy(self, policy: Policy) -> None:
        """Hot reload. New lanes appear; changed specs apply to batches that start forming
        from now on; queued jobs stay and leave normally. A lane dropped from the policy
        keeps its last spec so its queued jobs (and late arrivals classified under the old
        policy) still leave."""
        self.policy = policy
        for name, spec in policy.lanes.items():
            lane = self._lanes.get(name)
            if lane is None:
                self._lanes[name] = LaneState(name, spec)
            elif lane.spec != spec:
                lane.update_spec(spec)
        if self._watcher is not None:
            self._ensure_tasks()
        self._pump()

    # -- the Dispatcher protocol ---------------------------------------------------------

    async def acquire(self, job: Job) -> WorkerClient | None:
        if self._is_closed:
            raise unavailable("the gateway is shutting down; retry", retry_after_s=1)
        self._ensure_tasks()
        lane = self._lane_of(job)
        if not self.pool.has_healthy_worker():
            # Refused now, not at its deadline (24 h for bulk): nothing here could serve it. Jobs
            # already queued stay: a worker that is restarting takes them when it is back.
            raise unavailable("no healthy worker can serve this request right now; retry",
                              retry_after_s=NO_WORKER_RETRY_S)
        now = self.clock.now()
        tenant = self.policy.tenants.get(job.tenant)
        cap = tenant.max_queued_per_lane if tenant is not None else None
        refusal = check_tenant_queue(tenant=job.tenant, lane_name=lane.name, cap=cap,
                                     num_queued=lane.queue.num_queued_of(job.tenant),
                                     seconds_per_job=lane.rate.seconds_per_job)
        if refusal is not None:
            raise self._refuse(lane, refusal)
        backlog = Backlog(num_queued=lane.jobs_ahead_of(job.tenant), seconds_per_job=lane.rate.seconds_per_job,
                          num_unstarted=len(lane.unstarted), seconds_per_first_token=lane.start_rate.seconds_per_job,
                          worker_loads=tuple(self.pool.loads()))
        refusal = check_admission(lane_name=lane.name, lane=lane.spec, endpoint_name=job.endpoint,
                                  endpoint=self.policy.endpoints.get(job.endpoint), backlog=backlog,
                                  deadline=job.deadline, now=now)
        if refusal is not None:
            raise self._refuse(lane, refusal)
        # Kept for telemetry: predicted against actual TTFT shows whether admission is honest.
        job.predicted_wait_s = predict_wait(lane.name, lane.spec, backlog).wait_s
        future: asyncio.Future[WorkerClient] = asyncio.get_running_loop().create_future()
        waiter = Waiter(job, future, enqueued_at=now, window_s=lane.window_for_arrival(now))
        job.enqueued_at = now
        lane.counters.arrive(job.tenant)
        lane.queue.push(waiter)
        self._pump()  # a window of 0 (or a now-full batch) leaves before we ever wait
        if not future.done():
            lane.wakeup.set()  # it waits: the lane's flusher times its window (a job that left changed nothing)
        try:
            return await future
        except asyncio.CancelledError:
            self._on_cancelled(lane, waiter)
            raise

    def release(self, job: Job, *, completed: bool) -> None:
        lane = self._lanes.get(job.lane.name)
        if lane is None or job.request_id not in lane.in_flight_ids:
            raise RuntimeError(f"{job.request_id}: released but not in flight in lane {job.lane.name!r}")
        lane.in_flight_ids.remove(job.request_id)
        lane.unstarted.pop(job.request_id, None)  # failed or cancelled before its first token
        lane.num_completed += completed
        self._num_running_of[job.tenant] -= 1
        if self._num_running_of[job.tenant] <= 0:
            del self._num_running_of[job.tenant]
        # Charged max_tokens when it left; what it did not generate is given back.
        cost = JobCost(job.prompt_tokens_estimate, job.sampling.max_tokens)
        lane.counters.charge(job.tenant, -cost.refund(job.num_output_tokens), self._weight(job.tenant))
        lane.counters.leave(job.tenant)
        self._pump()  # a free slot may be what a backfill lane waits for

    def observe(self, job: Job, ttft_s: float) -> None:
        """A request's first token: the lane's start rate (admission) and its auto window."""
        lane = self._lanes.get(job.lane.name)
        if lane is None:
            return
        lane.mark_started(job.request_id, self.clock.now())
        if not lane.window.is_auto:
            return
        endpoint = self.policy.endpoints.get(job.endpoint)
        budget_ms = endpoint.slo.ttft_p95_ms if endpoint is not None else None
        # An endpoint without a TTFT budget is still bound by the lane's longest legal wait.
        lane.window.observe(ttft_s * 1000.0, budget_ms or lane.spec.max_queue_wait_ms)

    def snapshot(self) -> dict[str, LaneStats]:
        return {name: lane.stats() for name, lane in self._lanes.items()}

    # -- internals -----------------------------------------------------------------------

    def _lane_of(self, job: Job) -> LaneState:
        lane = self._lanes.get(job.lane.name)
        if lane is None:
            # Classified under a policy this dispatcher never saw (a reload raced the request).
            raise unavailable(f"lane {job.lane.name!r} is not served by this gateway's policy; retry",
                              retry_after_s=1)
        return lane

    def _refuse(self, lane: LaneState, refusal: Refusal) -> APIError:
        lane.num_refused[refusal.reason] += 1
        return refused(refusal.reason, refusal.message, refusal.retry_after_s)

    def _on_cancelled(self, lane: LaneState, waiter: Waiter) -> None:
        if waiter.future.cancelled():
            if lane.queue.remove(waiter):  # the client left while queued: never dispatched
                lane.counters.leave(waiter.job.tenant)
            lane.wakeup.set()  # the forming batch (and its window) may now be a different one
            self._pump()
        elif waiter.future.exception() is None:
            # Dispatched in the same instant the client left: nobody will call release().
            self.release(waiter.job, completed=False)

    def _ensure_tasks(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_pool(), name="lanes-pool-watcher")
            self._watcher.add_done_callback(_log_if_died)
        for lane in self._lanes.values():
            if lane.flusher is None:
                lane.flusher = asyncio.create_task(self._flush(lane), name=f"lane-flusher-{lane.name}")
                lane.flusher.add_done_callback(_log_if_died)

    async def _flush(self, lane: LaneState) -> None:
        while True:
            self._pump()
            now = self.clock.now()
            at = lane.next_timer(now)
            await wait_for_event(lane.wakeup, self.clock, None if at is None else at - now)
            lane.wakeup.clear()

    async def _watch_pool(self) -> None:
        while True:
            await wait_for_event(self.pool.changed, self.clock, TICK_S)
            self.pool.changed.clear()
            self._pump()

    def _pump(self) -> None:
        now = self.clock.now()
        order = sorted(self._lanes.values(), key=lambda lane: (lane.spec.backfill, lane.spec.priority, lane.name))
        has_worker = True
        backfill_room: int | None = None  # bulk headroom left for backfill in this pump
        for lane in order:
            while has_worker:
                ready = lane.ready_at()
                if ready is None or ready > now:
                    break
                limit = lane.spec.max_batch_size
                if lane.spec.backfill:
                    if any(other.has_waiting for other in order if not other.spec.backfill):
                        break
                    if backfill_room is None:
                        backfill_room = self.pool.backfill_capacity()
                    if backfill_room <= 0:
                        break
                    limit = min(limit, backfill_room)
                first = lane.next_waiter(self._can_take)
                if first is None:
                    break  # every waiting tenant is at its max_concurrent: a release pumps again
                worker = self.pool.pick(first.job)
                if worker is None:
                    has_worker = False  # no healthy worker: everything waits for pool.changed
                    break
                num_sent = self._dispatch(lane, worker, first, limit, now)
                if lane.spec.backfill and backfill_room is not None:
                    backfill_room -= num_sent
        for lane in order:
            for waiter in lane.queue.pop_expired(now):
                self._expire(lane, waiter, now)

    def _can_take(self, tenant: str) -> bool:
        spec = self.policy.tenants.get(tenant)
        cap = spec.max_concurrent if spec is not None else None
        return cap is None or self._num_running_of[tenant] < cap

    def _weight(self, tenant: str) -> float:
        spec = self.policy.tenants.get(tenant)
        return spec.weight if spec is not None else 1.0

    def _dispatch(self, lane: LaneState, worker: WorkerClient, first: Waiter, limit: int, now: float) -> int:
        """Send up to `limit` jobs, `first` first, each next one as the lane's order picks it."""
        batch: list[Waiter] = []
        waiter: Waiter | None = first
        while waiter is not None:
            lane.queue.remove(waiter)
            job = waiter.job
            self._num_running_of[job.tenant] += 1
            lane.counters.charge(job.tenant, JobCost(job.prompt_tokens_estimate, job.sampling.max_tokens).charged,
                                 self._weight(job.tenant))
            batch.append(waiter)
            waiter = lane.next_waiter(self._can_take) if len(batch) < limit else None
        batch.sort(key=lambda w: w.enqueued_at)  # the oldest first: the drain rate's busy interval
        batch_id = f"batch-{uuid.uuid4().hex[:16]}"
        for waiter in batch:
            job = waiter.job
            job.dispatched_at = now
            job.batch_id = batch_id
            job.batch_size = len(batch)
            lane.in_flight_ids.add(job.request_id)
            lane.unstarted[job.request_id] = now
            waiter.future.set_result(worker)
        lane.rate.record(num_jobs=len(batch), oldest_enqueued_at=batch[0].enqueued_at, now=now)
        lane.num_dispatched += len(batch)
        lane.last_batch_size = len(batch)
        return len(batch)

    def _expire(self, lane: LaneState, waiter: Waiter, now: float) -> None:
        waited_ms = (now - waiter.enqueued_at) * 1000.0
        error = self._refuse(lane, Refusal(
            DEADLINE,
            f"request waited {waited_ms:.0f} ms in lane {lane.name!r} and reached its deadline "
            f"before a worker could take it",
            retry_after_s=lane.rate.seconds_per_job or 1.0))
        log.info("%s: %s", waiter.job.request_id, error.message)
        lane.counters.leave(waiter.job.tenant)
        waiter.future.set_exception(error)


def _log_if_died(task: asyncio.Task[None]) -> None:
    # These tasks run until close(); one that ends on its own leaves a lane unflushed.
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: its lane's jobs now leave only on arrivals, departures or pool changes",
                  task.get_name(), exc_info=task.exception())
