"""In-flight bookkeeping, and what a departure or shutdown sets free."""

import pytest

from gateway.errors import APIError
from tests.gateway.lanes.factories import make_policy, running

pytestmark = pytest.mark.anyio


async def test_in_flight_counts_dispatched_jobs_until_released():
    policy = make_policy(lanes={"interactive": {"batch_window_ms": 0}})
    async with running(policy) as rig:
        jobs, _ = await rig.submit_many("inline", 2)
        assert rig.stats("interactive").num_in_flight == 2
        rig.dispatcher.release(jobs[0], completed=True)
        assert rig.stats("interactive").num_in_flight == 1
        with pytest.raises(RuntimeError, match="not in flight"):
            rig.dispatcher.release(jobs[0], completed=True)


async def test_a_departure_lets_waiting_backfill_in_at_once():
    policy = make_policy(lanes={"interactive": {"batch_window_ms": 0}})
    async with running(policy, free=0) as rig:
        inline = rig.job("inline")
        await rig.submit(inline)
        bulk_task = await rig.submit(rig.job("nightly"))
        await rig.until(ms=60)
        assert not bulk_task.done()
        rig.pool.free = 1  # what the pool will report once the interactive call has closed
        rig.dispatcher.release(inline, completed=True)
        await rig.clock.advance(0)
        assert bulk_task.done() and rig.clock.now() == rig.t(60), "no tick needed"


async def test_close_refuses_queued_jobs_and_stops_its_tasks():
    async with running(is_healthy=False) as rig:
        _, tasks = await rig.submit_many("chat", 2)
        await rig.dispatcher.close()
        await rig.clock.advance(0)
        for task in tasks:
            assert isinstance(task.exception(), APIError) and task.exception().status == 503
        assert rig.dispatcher.snapshot()["streaming"].queue_depth == 0
