"""The virtual worker: real scheduler on a virtual clock, exact in simulated time."""

from __future__ import annotations

import pytest

from workers.engine.config import SchedulerConfig
from workers.engine.linear_cost import LinearCost
from workers.engine.sequence import LanePolicy
from workers.sim.virtual_worker import ClosedSource, OpenSource, SimRequest, VirtualWorker, VirtualWorkerConfig


def make_worker(cost: LinearCost, num_blocks: int = 256, max_num_seqs: int = 16, budget: int = 64,
                max_model_len: int = 512) -> VirtualWorker:
    return VirtualWorker(cost, VirtualWorkerConfig(SchedulerConfig(max_num_seqs, budget, max_model_len), num_blocks))


def test_one_request_takes_one_pass_per_step_in_virtual_time() -> None:
    worker = make_worker(LinearCost(fixed_s=0.010))  # every pass 10 ms, whatever it holds
    run = worker.run(OpenSource([SimRequest(1.0, "e", prompt_tokens=32, max_tokens=4)]), horizon_s=60)
    [o] = run.outcomes
    assert o.ttft_s == pytest.approx(0.010)  # one prefill pass samples the first token
    assert o.finish_s == pytest.approx(1.040) and o.num_output_tokens == 4
    assert list(run.tbt_s["e"]) == pytest.approx([0.010] * 3)
    assert run.num_steps == 4 and run.busy_s == pytest.approx(0.040)


def test_every_request_is_accounted_for() -> None:
    reqs = [SimRequest(i * 0.05, "a" if i % 2 else "b", 40 + i, 8) for i in range(40)]
    reqs.append(SimRequest(0.5, "b", 600, 8))  # longer than max_model_len: refused, not lost
    run = make_worker(LinearCost(fixed_s=0.004, per_token_s=1e-4)).run(OpenSource(reqs), horizon_s=120)
    assert len(run.outcomes) == 41
    assert sum(1 for o in run.outcomes if o.rejected) == 1
    assert all(o.num_output_tokens == 8 for o in run.outcomes if not o.rejected)


def test_an_urgent_lane_overtakes_queued_bulk_work() -> None:
    bulk = LanePolicy("bulk", priority=2)
    urgent = LanePolicy("interactive", priority=0, preemptible=False)
    reqs = [SimRequest(0.0, "bulk", 64, 32, lane=bulk) for _ in range(6)]
    reqs.append(SimRequest(0.001, "inline", 64, 4, lane=urgent))
    run = make_worker(LinearCost(fixed_s=0.005, per_token_s=1e-3), max_num_seqs=2).run(OpenSource(reqs), 60)
    inline = next(o for o in run.outcomes if o.request.endpoint == "inline")
    bulk_ttfts = sorted(o.ttft_s for o in run.outcomes if o.request.endpoint == "bulk")
    assert inline.ttft_s < bulk_ttfts[2]  # ahead of the bulk requests still waiting when it arrived


def test_shared_prefixes_hit_the_prefix_cache() -> None:
    reqs = [SimRequest(i * 1.0, "e", 100, 2, prefix_key="sys", prefix_tokens=64) for i in range(3)]
    run = make_worker(LinearCost(fixed_s=0.001)).run(OpenSource(reqs), 60)
    assert [o.num_cached_tokens for o in run.outcomes] == [0, 64, 64]


def test_different_prefix_keys_never_share_blocks() -> None:
    reqs = [SimRequest(i * 1.0, "e", 100, 2, prefix_key=f"user{i}", prefix_tokens=64) for i in range(3)]
    run = make_worker(LinearCost(fixed_s=0.001)).run(OpenSource(reqs), 60)
    assert [o.num_cached_tokens for o in run.outcomes] == [0, 0, 0]


def test_closed_loop_keeps_concurrency_and_stops_at_the_horizon() -> None:
    worker = make_worker(LinearCost(fixed_s=0.01), max_num_seqs=8)
    source = ClosedSource(3, lambda user, now: SimRequest(now, "c", 16, 4, user=user), until_s=5.0)
    run = worker.run(source, horizon_s=5.0)
    assert run.mean_batch_size == pytest.approx(3.0)
    assert {o.request.user for o in run.outcomes} == {0, 1, 2}
    assert run.tokens_per_s(1.0, 5.0) == pytest.approx(3 / 0.01, rel=0.01)  # 3 tokens per 10 ms pass


def test_a_closed_loop_user_whose_request_is_refused_stops() -> None:
    worker = make_worker(LinearCost(fixed_s=0.01), max_model_len=64)
    run = worker.run(ClosedSource(2, lambda user, now: SimRequest(now, "c", 100, 4, user=user), until_s=5.0), 5.0)
    assert len(run.outcomes) == 2 and all(o.rejected for o in run.outcomes)
