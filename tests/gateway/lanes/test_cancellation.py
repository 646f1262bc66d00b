"""A client that leaves while queued takes its job out of the lane; it is never dispatched."""

import asyncio

import pytest

from tests.gateway.lanes.factories import running
from tests.gateway.lanes.fake_clock import settle

pytestmark = pytest.mark.anyio


async def test_a_cancelled_job_leaves_the_queue_and_the_batch():
    async with running() as rig:
        gone = rig.job("inline")
        gone_task = await rig.submit(gone)
        await rig.until(ms=2)
        stays = rig.job("inline")
        stays_task = await rig.submit(stays)
        gone_task.cancel()
        await settle()
        assert gone_task.cancelled()
        assert rig.stats("interactive").queue_depth == 1

        await rig.until(ms=11.9)  # the window now counts from `stays`, the first job left
        assert not stays_task.done()
        await rig.until(ms=12.1)
        assert stays_task.done() and stays.batch_size == 1
        assert rig.pool.picks == [stays]
        assert (gone.dispatched_at, gone.batch_id) == (None, "")


async def test_a_job_cancelled_while_no_worker_is_healthy_is_never_dispatched():
    async with running(is_healthy=False) as rig:
        task = await rig.submit(rig.job("chat"))
        task.cancel()
        await settle()
        rig.pool.set_healthy(True)
        await rig.until(ms=100)
        assert rig.pool.picks == []
        stats = rig.stats("streaming")
        assert (stats.queue_depth, stats.num_dispatched) == (0, 0)


async def test_a_client_leaving_in_the_instant_its_batch_left_releases_its_slot():
    async with running(is_healthy=False) as rig:
        job = rig.job("inline")
        task = await rig.submit(job)
        await rig.until(ms=10)  # its window has closed; it waits for a worker
        rig.pool.is_healthy = True
        rig.dispatcher.update_policy(rig.policy)  # pumps now: the batch leaves, the task has not resumed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert job.batch_id, "it was dispatched"
        assert rig.stats("interactive").num_in_flight == 0, "nobody else will release it"


async def test_a_cancelled_job_gives_its_place_back_to_the_depth_limit():
    async with running(is_healthy=False) as rig:  # interactive: max_queue_depth 8
        _, tasks = await rig.submit_many("inline", 8)
        tasks[4].cancel()  # from the middle of the queue, not its head
        await settle()
        assert rig.stats("interactive").queue_depth == 7
        newcomer = await rig.submit(rig.job("inline"))
        assert not newcomer.done(), "admitted into the freed place"
