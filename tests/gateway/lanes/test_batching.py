"""Batch windows: who leaves together, when, and to which worker."""

import pytest

from tests.gateway.lanes.factories import make_policy, running

pytestmark = pytest.mark.anyio


async def test_jobs_arriving_within_the_window_leave_together_to_one_worker():
    async with running() as rig:  # interactive: window 10 ms
        a = rig.job("inline")
        task_a = await rig.submit(a)
        await rig.until(ms=4)
        b = rig.job("inline")
        task_b = await rig.submit(b)
        await rig.until(ms=8)
        c = rig.job("inline")
        task_c = await rig.submit(c)
        await rig.until(ms=9.9)
        assert not any(t.done() for t in (task_a, task_b, task_c)), "the window (10 ms from a) is still open"

        await rig.until(ms=10)
        assert all(t.done() for t in (task_a, task_b, task_c))
        assert len({id(t.result()) for t in (task_a, task_b, task_c)}) == 1, "one batch, one worker"
        assert a.batch_id and {j.batch_id for j in (a, b, c)} == {a.batch_id}
        assert [j.batch_size for j in (a, b, c)] == [3, 3, 3]
        assert [j.enqueued_at for j in (a, b, c)] == [rig.t(0), rig.t(4), rig.t(8)]
        assert {j.dispatched_at for j in (a, b, c)} == {rig.t(10)}
        assert rig.pool.picks == [a], "pick() once per batch, placed by its first job"

        d = rig.job("inline")
        task_d = await rig.submit(d)
        await rig.until(ms=20.1)
        assert task_d.done() and d.batch_id != a.batch_id and d.batch_size == 1
        stats = rig.stats("interactive")
        assert (stats.num_dispatched, stats.last_batch_size, stats.queue_depth) == (4, 1, 0)


async def test_a_full_batch_leaves_at_once_and_the_rest_forms_the_next():
    async with running() as rig:  # interactive: max_batch_size 4, window 10 ms
        jobs, tasks = await rig.submit_many("inline", 6)
        assert [t.done() for t in tasks] == [True] * 4 + [False] * 2
        assert {j.batch_id for j in jobs[:4]} == {jobs[0].batch_id}
        assert [j.batch_size for j in jobs[:4]] == [4] * 4
        assert jobs[0].dispatched_at == rig.t(0)

        await rig.until(ms=10)
        assert all(t.done() for t in tasks)
        assert jobs[4].batch_id == jobs[5].batch_id != jobs[0].batch_id
        assert (jobs[4].batch_size, jobs[4].dispatched_at) == (2, rig.t(10))
        assert rig.pool.picks == [jobs[0], jobs[4]]


async def test_a_window_of_zero_dispatches_at_once():
    policy = make_policy(lanes={"interactive": {"batch_window_ms": 0}})
    async with running(policy) as rig:
        jobs, tasks = await rig.submit_many("inline", 3)
        assert all(t.done() for t in tasks), "no clock time passed, yet every job left"
        assert len({j.batch_id for j in jobs}) == 3
        assert all(j.queue_wait_s == 0 and j.batch_size == 1 for j in jobs)

        # Not even a turn of the event loop: acquire() finishes on its first step.
        step = rig.dispatcher.acquire(rig.job("inline"))
        with pytest.raises(StopIteration) as finished:
            step.send(None)
        assert finished.value.value in rig.pool.workers


async def test_a_deadline_inside_the_window_closes_it_early():
    async with running() as rig:
        early = rig.job("inline", deadline_ms=4)  # the client gives up before the 10 ms window ends
        other = rig.job("inline")
        tasks = [await rig.submit(early), await rig.submit(other)]
        await rig.until(ms=3.9)
        assert not any(t.done() for t in tasks)
        await rig.until(ms=4.1)
        assert all(t.done() for t in tasks)
        assert early.dispatched_at == pytest.approx(rig.t(4), abs=1e-6)
        assert early.batch_id == other.batch_id


async def test_a_request_that_finds_an_idle_latency_lane_leaves_at_once():
    # The latency lanes' default (wait_when_idle left out): no company in sight, no window.
    policy = make_policy(lanes={"interactive": {"wait_when_idle": None}})
    async with running(policy) as rig:  # interactive: window 10 ms
        lone = rig.job("inline")
        task = await rig.submit(lone)
        assert task.done() and lone.dispatched_at == rig.t(0) and lone.batch_size == 1

        # Arrivals closer than a window: company is likely, so the next one waits for it.
        await rig.until(ms=3)
        b, c = rig.job("inline"), rig.job("inline")
        task_b = await rig.submit(b)
        await rig.until(ms=8)
        task_c = await rig.submit(c)
        await rig.until(ms=12.9)
        assert not task_b.done(), "b came 3 ms after the last arrival: it waits its window (to 13 ms)"
        await rig.until(ms=13)
        assert task_b.done() and task_c.done()
        assert b.batch_id == c.batch_id and b.batch_size == 2 and b.dispatched_at == rig.t(13)

        # More than a window after the last arrival, the lane is idle again.
        await rig.until(ms=30)
        later = rig.job("inline")
        task_later = await rig.submit(later)
        assert task_later.done() and later.dispatched_at == rig.t(30)


async def test_a_bulk_lane_waits_out_its_window_even_when_idle():
    policy = make_policy()  # bulk: window 50 ms, wait_when_idle left out
    assert policy.lanes["bulk"].waits_when_idle and not make_policy(
        lanes={"interactive": {"wait_when_idle": None}}).lanes["interactive"].waits_when_idle
    async with running(policy) as rig:
        job = rig.job("nightly")
        task = await rig.submit(job)
        await rig.until(ms=49.9)
        assert not task.done()
        await rig.until(ms=50)
        assert task.done() and job.dispatched_at == rig.t(50)
