"""make_policy, make_job and a running dispatcher on a fake clock and a fake pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from gateway.job import Job, LaneTicket, Sampling
from gateway.lanes_runtime import LaneDispatcher
from lanes import Policy, parse_policy
from lanes.api_key import hash_api_key
from tests.gateway.lanes.fake_clock import FakeClock, settle
from tests.gateway.lanes.fake_pool import FakePool

# The latency lanes wait out their windows even when idle (not their default), so a test's
# first job starts a batch window as every later one does; test_batching.py covers the default.
LANES: dict[str, dict[str, Any]] = {
    "interactive": {"priority": 0, "batch_window_ms": 10, "max_batch_size": 4, "max_queue_depth": 8,
                    "max_queue_wait_ms": 1000, "wait_when_idle": True},
    "streaming": {"priority": 1, "batch_window_ms": 20, "max_batch_size": 8, "max_queue_depth": 16,
                  "max_queue_wait_ms": 5000, "wait_when_idle": True},
    "bulk": {"priority": 2, "batch_window_ms": 50, "max_batch_size": 16, "max_queue_depth": 100_000,
             "max_queue_wait_ms": 3_600_000, "preemptible": True, "backfill": True},
}
ENDPOINTS: dict[str, dict[str, Any]] = {
    "inline": {"lane": "interactive", "slo": {"ttft_p95_ms": 300}},
    "chat": {"lane": "streaming", "slo": {"ttft_p95_ms": 2000}},
    "nightly": {"lane": "bulk"},
}


def make_policy(lanes: dict[str, dict[str, Any]] | None = None,
                endpoints: dict[str, dict[str, Any]] | None = None,
                without_lanes: tuple[str, ...] = (), tenants: dict[str, dict[str, Any]] | None = None) -> Policy:
    """The preset above; each given lane or endpoint is merged over its preset (or added).
    Each tenant gets a key (sk-NAME) and every endpoint unless it says otherwise."""
    merged_lanes = _merged(LANES, lanes or {})
    data = {
        "version": 1,
        "default_endpoint": "chat",
        "auth": {"required": False},
        "lanes": {name: spec for name, spec in merged_lanes.items() if name not in without_lanes},
        "endpoints": _merged(ENDPOINTS, endpoints or {}),
        "tenants": {name: {"endpoints": "*", **({} if name == "anonymous" else
                                                {"keys_sha256": [hash_api_key(f"sk-{name}")]}), **spec}
                    for name, spec in (tenants or {}).items()},
    }
    return parse_policy(yaml.safe_dump(data), "test-policy.yaml")


def _merged(base: dict[str, dict[str, Any]], over: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {**base.get(name, {}), **over.get(name, {})} for name in {**base, **over}}


def make_job(policy: Policy, now: float, endpoint: str = "chat", *, deadline_ms: float | None = None,
             lane: str | None = None, tenant: str = "anonymous", max_tokens: int = 16,
             prompt_tokens: int = 2) -> Job:
    """A job as gateway.intake builds it: the endpoint's lane, deadline = min(lane wait, client's)."""
    lane_name = lane or policy.endpoints[endpoint].lane
    spec = policy.lanes[lane_name]
    ticket = LaneTicket.for_lane(lane_name, spec)
    deadline = now + spec.max_queue_wait_ms / 1000.0
    if deadline_ms is not None:
        deadline = min(deadline, now + deadline_ms / 1000.0)
    return Job(endpoint=endpoint, tenant=tenant, kind="completion", prompt="hello",
               sampling=Sampling(max_tokens=max_tokens), lane=ticket, stream=False,
               prompt_tokens_estimate=prompt_tokens,
               deadline=deadline, created=now)


@dataclass
class Rig:
    dispatcher: LaneDispatcher
    pool: FakePool
    clock: FakeClock
    policy: Policy
    t0: float = 0.0
    tasks: list[asyncio.Task] = field(default_factory=list)

    def t(self, ms: float) -> float:
        """The moment `ms` after the rig started."""
        return self.t0 + ms / 1000.0

    async def until(self, ms: float) -> None:
        """Let the fake clock run to `ms` after the rig started."""
        await self.clock.advance_to(self.t(ms))

    def job(self, endpoint: str = "chat", **kwargs: Any) -> Job:
        return make_job(self.policy, self.clock.now(), endpoint, **kwargs)

    async def submit(self, job: Job) -> asyncio.Task:
        """Start acquire(job) and let it run until it waits."""
        task = asyncio.create_task(self.dispatcher.acquire(job))
        self.tasks.append(task)
        await settle()
        return task

    async def submit_many(self, endpoint: str, n: int) -> tuple[list[Job], list[asyncio.Task]]:
        jobs = [self.job(endpoint) for _ in range(n)]
        return jobs, [await self.submit(job) for job in jobs]

    def stats(self, lane: str):
        return self.dispatcher.snapshot()[lane]


@contextlib.asynccontextmanager
async def running(policy: Policy | None = None, pool: Any = None, **pool_fields: Any) -> AsyncIterator[Rig]:
    """A dispatcher on a fake clock; on a FakePool made of pool_fields unless `pool` is given."""
    policy = policy or make_policy()
    pool, clock = pool if pool is not None else FakePool(**pool_fields), FakeClock()
    dispatcher = LaneDispatcher(policy, pool, clock=clock)  # type: ignore[arg-type]
    await dispatcher.start()
    rig = Rig(dispatcher, pool, clock, policy, t0=clock.now())
    try:
        yield rig
    finally:
        await dispatcher.close()
        for task in rig.tasks:
            task.cancel()  # no-op for finished ones; reaps those a test left waiting
        await asyncio.gather(*rig.tasks, return_exceptions=True)
