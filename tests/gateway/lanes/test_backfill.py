"""Backfill lanes use only the capacity the other lanes leave idle."""

import pytest

from gateway.job import WorkerLoad
from gateway.lanes_runtime.dispatcher import TICK_S
from tests.gateway.lanes.factories import make_policy, running
from tests.gateway.lanes.fake_pool import FakeWorker, pool_of, timed

pytestmark = pytest.mark.anyio


async def test_backfill_holds_back_while_another_lane_has_queued_jobs():
    policy = make_policy(lanes={"interactive": {"batch_window_ms": 200}})  # bulk window: 50 ms
    async with running(policy) as rig:
        bulk = rig.job("nightly")
        bulk_task = await rig.submit(bulk)
        inline = rig.job("inline")
        inline_task = await rig.submit(inline)
        await rig.until(ms=199)
        assert not bulk_task.done(), "bulk's window closed at 50 ms, but an interactive job is queued"
        await rig.until(ms=200)
        assert inline_task.done() and bulk_task.done()
        assert rig.pool.picks == [inline, bulk]


async def test_backfill_waits_for_free_capacity_and_takes_no_more_than_is_free():
    async with running(free=0) as rig:
        jobs, tasks = await rig.submit_many("nightly", 5)
        await rig.until(ms=1000)
        assert not any(t.done() for t in tasks), "no free capacity: bulk waits"
        rig.pool.set_free(3)
        await rig.clock.advance(0)
        assert [t.done() for t in tasks] == [True] * 3 + [False] * 2
        assert jobs[0].batch_size == 3 and jobs[0].dispatched_at == rig.t(1000)
        rig.pool.set_free(0)  # the three took the free slots
        await rig.until(ms=2000)
        assert not any(t.done() for t in tasks[3:])
        assert rig.stats("bulk").queue_depth == 2


async def test_backfill_rechecks_capacity_on_a_tick_without_any_signal():
    async with running(free=0) as rig:
        task = await rig.submit(rig.job("nightly"))
        await rig.until(ms=500)
        rig.pool.free = 1  # a worker's load report changed, and nothing set pool.changed
        await rig.clock.advance(TICK_S)
        assert task.done()


async def test_interactive_latency_does_not_depend_on_the_bulk_backlog():
    async with running(free=0) as rig:
        await rig.submit_many("nightly", 2000)
        inline = rig.job("inline")
        task = await rig.submit(inline)
        await rig.until(ms=10)
        assert task.done() and inline.queue_wait_s == pytest.approx(0.010)
        assert rig.stats("bulk").queue_depth == 2000


async def test_bulk_leaves_into_the_workers_step_time_headroom_not_their_free_slots():
    # A real WorkerPool over one fake worker: 28 free slots, but its steps have time for 2 more
    # bulk sequences beside its streams. Then it reports no step budget: free slots count again.
    worker = FakeWorker("w0", timed(num_bulk_slots=2))
    async with running(pool=pool_of(worker)) as rig:
        jobs, tasks = await rig.submit_many("nightly", 5)
        await rig.until(ms=50)  # bulk's window
        assert [t.done() for t in tasks] == [True] * 2 + [False] * 3
        assert jobs[0].batch_size == 2

        worker.load = WorkerLoad(num_running=6, max_num_seqs=32)  # token mode: 26 free slots
        rig.dispatcher.pool.changed.set()
        await rig.until(ms=60)
        assert all(t.done() for t in tasks)
