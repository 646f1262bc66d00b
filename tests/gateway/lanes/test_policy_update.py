"""Hot reload: new lanes appear, changed specs apply to new batches, queued jobs stay."""

import pytest

from tests.gateway.lanes.factories import make_job, make_policy, running

pytestmark = pytest.mark.anyio


async def test_queued_jobs_survive_a_reload_that_tightens_their_lane():
    async with running(is_healthy=False) as rig:
        jobs, tasks = await rig.submit_many("inline", 3)
        rig.dispatcher.update_policy(make_policy(lanes={"interactive": {"max_queue_depth": 1, "batch_window_ms": 50}}))
        await rig.until(ms=100)
        assert not any(t.done() for t in tasks), "already queued: not refused by the new depth limit"
        rig.pool.set_healthy(True)
        await rig.clock.advance(0)
        assert all(t.done() for t in tasks) and jobs[0].batch_size == 3


async def test_a_changed_window_applies_to_batches_that_start_after_the_reload():
    async with running() as rig:
        old = rig.job("inline")
        old_task = await rig.submit(old)
        rig.dispatcher.update_policy(make_policy(lanes={"interactive": {"batch_window_ms": 30}}))
        assert rig.stats("interactive").window_ms == 30
        await rig.until(ms=10)
        assert old_task.done(), "its batch formed under the 10 ms window"

        new = rig.job("inline")
        new_task = await rig.submit(new)
        await rig.until(ms=39.9)
        assert not new_task.done()
        await rig.until(ms=40.1)
        assert new_task.done()


async def test_a_new_lane_appears_and_a_removed_lane_still_drains():
    async with running(is_healthy=False) as rig:
        _, chat_tasks = await rig.submit_many("chat", 2)
        voice = {"voice": {"kind": "interactive", "priority": 0, "batch_window_ms": 0, "max_batch_size": 2,
                           "max_queue_depth": 4, "max_queue_wait_ms": 500}}
        new_policy = make_policy(lanes=voice, endpoints={"talk": {"lane": "voice"}, "chat": {"lane": "voice"}},
                                 without_lanes=("streaming",))
        rig.dispatcher.update_policy(new_policy)
        rig.pool.set_healthy(True)
        talk = make_job(new_policy, rig.clock.now(), "talk")
        talk_task = await rig.submit(talk)
        assert talk_task.done() and talk.lane.name == "voice"
        await rig.until(ms=20)
        assert all(t.done() for t in chat_tasks), "the streaming lane left the policy but its jobs still leave"
        assert set(rig.dispatcher.snapshot()) >= {"voice", "streaming"}
