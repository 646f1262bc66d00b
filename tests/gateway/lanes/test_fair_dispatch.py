"""Fair queuing in the dispatcher: the order jobs leave a lane, per-tenant caps, admission."""

from __future__ import annotations

import pytest

from gateway.errors import APIError
from tests.gateway.lanes.factories import make_policy, running

pytestmark = pytest.mark.anyio

TENANTS = {"noisy": {}, "quiet": {}}


async def _backlog(rig, tenants: list[str], endpoint: str = "nightly", max_tokens: int = 16):
    jobs, tasks = [], []
    for tenant in tenants:
        job = rig.job(endpoint, tenant=tenant, max_tokens=max_tokens)
        jobs.append(job)
        tasks.append(await rig.submit(job))
    return jobs, tasks


async def test_a_quiet_tenant_is_not_stuck_behind_a_noisy_backlog():
    async with running(make_policy(tenants=TENANTS), free=0) as rig:
        jobs, tasks = await _backlog(rig, ["noisy"] * 10 + ["quiet"] * 2)
        await rig.until(ms=100)
        rig.pool.set_free(4)
        await rig.clock.advance(0)
        sent = [job.tenant for job, task in zip(jobs, tasks) if task.done()]
        assert sorted(sent) == ["noisy", "noisy", "quiet", "quiet"], "fair queuing alternates the tenants"


async def test_a_fcfs_lane_serves_in_arrival_order():
    policy = make_policy(lanes={"bulk": {"fairness": "fcfs"}}, tenants=TENANTS)
    async with running(policy, free=0) as rig:
        jobs, tasks = await _backlog(rig, ["noisy"] * 10 + ["quiet"] * 2)
        await rig.until(ms=100)
        rig.pool.set_free(4)
        await rig.clock.advance(0)
        assert [job.tenant for job, task in zip(jobs, tasks) if task.done()] == ["noisy"] * 4


async def test_a_tenant_asking_for_long_answers_gets_fewer_of_them():
    async with running(make_policy(tenants=TENANTS), free=0) as rig:
        long_jobs, long_tasks = await _backlog(rig, ["noisy"] * 6, max_tokens=400)
        short_jobs, short_tasks = await _backlog(rig, ["quiet"] * 6, max_tokens=100)
        await rig.until(ms=100)
        rig.pool.set_free(5)
        await rig.clock.advance(0)
        # Equal weights: 1 long (400 tokens) to 4 short (100 each), by tokens not by requests.
        assert sum(t.done() for t in long_tasks) == 1
        assert sum(t.done() for t in short_tasks) == 4


async def test_weight_buys_a_larger_share():
    policy = make_policy(tenants={"noisy": {}, "quiet": {"weight": 3.0}})
    async with running(policy, free=0) as rig:
        jobs, tasks = await _backlog(rig, ["noisy"] * 8 + ["quiet"] * 8)
        await rig.until(ms=100)
        rig.pool.set_free(8)
        await rig.clock.advance(0)
        sent = [job.tenant for job, task in zip(jobs, tasks) if task.done()]
        assert sent.count("quiet") == 6 and sent.count("noisy") == 2


async def test_max_concurrent_holds_a_tenants_jobs_in_the_queue_until_one_is_released():
    policy = make_policy(tenants={"noisy": {"max_concurrent": 2}, "quiet": {}})
    async with running(policy) as rig:
        jobs, tasks = await _backlog(rig, ["noisy"] * 4 + ["quiet"])
        await rig.until(ms=100)
        assert [t.done() for t in tasks] == [True, True, False, False, True]
        assert rig.stats("bulk").queue_depth == 2
        rig.dispatcher.release(jobs[0], completed=True)
        await rig.clock.advance(0)
        assert [t.done() for t in tasks] == [True, True, True, False, True]


async def test_a_tenant_over_its_queue_cap_is_refused_naming_the_cap_and_others_still_get_in():
    policy = make_policy(tenants={"noisy": {"max_queued_per_lane": 2}, "quiet": {}})
    async with running(policy, free=0) as rig:
        jobs, tasks = await _backlog(rig, ["noisy"] * 3 + ["quiet"])
        with pytest.raises(APIError) as err:
            await tasks[2]
        assert err.value.status == 429
        assert err.value.headers["x-laneway-reject-reason"] == "tenant-queue-full"
        assert "tenants.noisy.max_queued_per_lane 2" in err.value.message
        assert not tasks[3].done(), "the quiet tenant was admitted and waits for capacity"
        assert rig.stats("bulk").num_refused == {"tenant-queue-full": 1}


async def test_a_shared_fair_latency_lane_is_not_held_for_worker_slots():
    # The worker orders a fair lane by tenant (workers/engine/tenant_shares.py): holding jobs
    # here would only add the wait for the next load report to the quiet tenant's.
    async with running(make_policy(tenants=TENANTS), free=0) as rig:
        jobs, tasks = await _backlog(rig, ["noisy"] * 3 + ["quiet"], endpoint="chat")
        await rig.until(ms=20)  # the streaming lane's window
        assert all(t.done() for t in tasks)
        assert all(job.lane.fair_tenants for job in jobs), "the worker is told to order the lane by tenant"
