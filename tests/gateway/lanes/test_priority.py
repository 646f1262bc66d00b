"""Between lanes, the lower priority number leaves first."""

import pytest

from tests.gateway.lanes.factories import make_policy, running

pytestmark = pytest.mark.anyio


async def test_batches_ready_at_the_same_moment_leave_in_priority_order():
    policy = make_policy(lanes={"interactive": {"batch_window_ms": 20}})  # both lanes: 20 ms windows
    async with running(policy) as rig:
        chat = rig.job("chat")
        await rig.submit(chat)  # the streaming lane's flusher is first to wake at 20 ms
        inline = rig.job("inline")
        await rig.submit(inline)
        await rig.until(ms=20)
        assert rig.pool.picks == [inline, chat]


async def test_when_a_worker_returns_the_most_urgent_backlog_leaves_first():
    async with running(is_healthy=False) as rig:
        chats, _ = await rig.submit_many("chat", 2)
        inlines, _ = await rig.submit_many("inline", 2)
        await rig.until(ms=100)
        rig.pool.set_healthy(True)
        await rig.clock.advance(0)
        assert rig.pool.picks == [inlines[0], chats[0]]
        assert all(j.dispatched_at == rig.t(100) for j in chats + inlines)
