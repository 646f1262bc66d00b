"""Auto windows widen under slack, narrow near the budget, and stay in their bounds."""

import pytest

from gateway.lanes_runtime.window_controller import SAMPLES_PER_DECISION, WindowController
from lanes.lane import BatchWindow
from tests.gateway.lanes.factories import make_policy, running

pytestmark = pytest.mark.anyio

AUTO = BatchWindow(auto=True, min=2, max=50)


def feed(controller: WindowController, ttft_ms: float, budget_ms: float = 1000, rounds: int = 1) -> None:
    for _ in range(rounds * SAMPLES_PER_DECISION):
        controller.observe(ttft_ms, budget_ms)


def test_an_auto_window_starts_at_its_minimum_and_widens_under_slack():
    c = WindowController(AUTO)
    assert c.current_ms == 2
    feed(c, ttft_ms=100)  # 10% of budget
    assert c.current_ms == 2.5
    feed(c, ttft_ms=100, rounds=3)
    assert c.current_ms == pytest.approx(2.5 * 1.25**3)


def test_it_narrows_near_the_budget_and_holds_in_between():
    c = WindowController(AUTO, current_ms=40)
    feed(c, ttft_ms=700)  # 70%: neither slack nor pressure
    assert c.current_ms == 40
    feed(c, ttft_ms=900)  # 90%
    assert c.current_ms == 20


def test_it_never_leaves_its_bounds():
    c = WindowController(AUTO)
    feed(c, ttft_ms=10, rounds=40)
    assert c.current_ms == 50
    feed(c, ttft_ms=990, rounds=40)
    assert c.current_ms == 2


def test_p95_sees_the_tail_not_the_median():
    c = WindowController(AUTO, current_ms=40)
    for _ in range(SAMPLES_PER_DECISION - 2):
        c.observe(100, 1000)
    c.observe(950, 1000)
    c.observe(950, 1000)  # 2 of 20 near the budget: p95 is near the budget
    assert c.current_ms == 20


def test_the_tightest_budget_among_recent_requests_decides():
    c = WindowController(AUTO, current_ms=40)
    for i in range(SAMPLES_PER_DECISION):
        c.observe(400, 2000 if i % 2 else 450)  # 20% of one endpoint's budget, 89% of the other's
    assert c.current_ms == 20


def test_a_fixed_window_never_changes():
    c = WindowController(BatchWindow(min=10, max=10))
    feed(c, ttft_ms=1, rounds=5)
    feed(c, ttft_ms=10_000, rounds=5)
    assert c.current_ms == 10


async def test_the_dispatcher_widens_an_auto_lane_from_observed_ttft_and_batches_with_it():
    policy = make_policy(lanes={"streaming": {"batch_window_ms": {"auto": True, "min": 2, "max": 50}}})
    async with running(policy) as rig:  # chat's budget: 2000 ms
        for _ in range(SAMPLES_PER_DECISION):
            rig.dispatcher.observe(rig.job("chat"), ttft_s=0.2)
        assert rig.stats("streaming").window_ms == 2.5
        assert rig.stats("interactive").window_ms == 10, "only the observed lane moves"

        task = await rig.submit(rig.job("chat"))
        await rig.until(ms=2.4)
        assert not task.done()
        await rig.until(ms=2.6)
        assert task.done()

        for _ in range(SAMPLES_PER_DECISION):
            rig.dispatcher.observe(rig.job("chat"), ttft_s=1.9)  # 95% of the budget
        assert rig.stats("streaming").window_ms == 2, "narrowed back, not below min"


async def test_observations_of_a_fixed_lane_change_nothing():
    async with running() as rig:
        for _ in range(5 * SAMPLES_PER_DECISION):
            rig.dispatcher.observe(rig.job("inline"), ttft_s=0.001)
        assert rig.stats("interactive").window_ms == 10
