"""The step planner's time rules on a fake cost model (scheduler.py, THE RULE).

A fixed linear cost stands in for the calibrated one: 10 ms a step plus 2 ms a token, so
a TBT target of 100 ms (80 ms after headroom) leaves room for 35 tokens a step.
"""

from __future__ import annotations

import random

import pytest

from tests.workers.engine.factories import INTERACTIVE, STREAMING, make_scheduler, make_seq, step
from workers.engine.linear_cost import LinearCost
from workers.engine.scheduler import MIN_URGENT_CHUNK, TBT_HEADROOM
from workers.engine.sequence import LanePolicy, LatencyTargets
from workers.engine.step_shape import StepShape

COST = LinearCost(fixed_s=0.010, per_token_s=0.002)
STREAM = LatencyTargets(ttft_s=1.5, tbt_s=0.100)
INLINE = LatencyTargets(ttft_s=0.4)
BULK = LanePolicy(name="bulk", priority=2, preemptible=True)


def bulk_lane(min_share: float) -> LanePolicy:
    return LanePolicy(name="bulk", priority=2, preemptible=True, min_share=min_share)


def big_scheduler(**kwargs: int):
    defaults = dict(num_blocks=4096, block_size=16, max_num_seqs=64, max_num_batched_tokens=512,
                    max_model_len=4096)
    defaults.update(kwargs)
    return make_scheduler(**defaults, cost=COST)


def bulk_tokens(result) -> int:
    return sum(c.num_new_tokens for c, item in zip(result.chunks, result.output.scheduled)
               if item.seq.lane.is_deferrable)


def test_without_latency_work_bulk_takes_the_whole_token_budget() -> None:
    sched = big_scheduler()
    for i in range(4):
        sched.add(make_seq(f"b{i}", prompt_len=300, max_tokens=8, lane=BULK))
    first = step(sched)
    assert first.output.time_budget == float("inf")
    assert first.output.num_batched_tokens == 512  # only the token budget binds


def test_a_running_stream_bounds_the_step_and_bulk_sits_out_keeping_its_kv() -> None:
    sched = big_scheduler()
    for i in range(40):
        sched.add(make_seq(f"b{i}", prompt_len=64, max_tokens=200, lane=BULK))
    for _ in range(8):
        step(sched)  # bulk is prefilled and decoding: nothing to protect yet
    stream = make_seq("stream", prompt_len=20, max_tokens=50, lane=STREAMING, targets=STREAM)
    sched.add(stream)
    limit = STREAM.tbt_s * TBT_HEADROOM
    sat_out_seen = False
    for _ in range(20):
        result = step(sched)
        out = result.output
        assert out.time_budget <= limit
        assert COST.step_time(shape_of_chunks(result)) <= out.time_budget + 1e-9
        assert "stream" in result.ids
        if out.sat_out:
            sat_out_seen = True
            assert all(s.block_table for s in out.sat_out), "a seq that sits out keeps its KV"
    assert sat_out_seen, "40 bulk decodes cost more than the budget: some must sit out"


def shape_of_chunks(result) -> StepShape:
    total = StepShape(0, 0, 0, 0)
    for c in result.chunks:
        total = total + StepShape.chunk(c.start, c.num_new_tokens)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_a_step_never_exceeds_the_tightest_tbt_target_while_bulk_could_be_deferred(seed: int) -> None:
    rng = random.Random(seed)
    sched = big_scheduler()
    tight = LatencyTargets(ttft_s=1.0, tbt_s=0.150)
    for i in range(30):
        sched.add(make_seq(f"b{i}", prompt_len=rng.randrange(50, 600), max_tokens=rng.randrange(20, 200), lane=BULK))
    for n in range(200):
        if rng.random() < 0.2:
            lane, targets = (STREAMING, STREAM) if rng.random() < 0.5 else (STREAMING, tight)
            sched.add(make_seq(f"s{n}", prompt_len=rng.randrange(10, 60), max_tokens=rng.randrange(5, 40),
                               lane=lane, targets=targets))
        if not sched.has_unfinished:
            break
        result = step(sched)
        out = result.output
        predicted = COST.step_time(shape_of_chunks(result))
        latency_running = [s for s in sched.running if not s.lane.is_deferrable and s.targets.tbt_s]
        if any(item.seq.lane.is_deferrable for item in out.scheduled) and latency_running:
            assert predicted <= out.time_budget + 1e-9, f"step {n}: {predicted:.3f}s over {out.time_budget:.3f}s"


def test_bulk_progresses_at_its_min_share_even_when_streams_fill_the_budget() -> None:
    sched = big_scheduler()
    slow_stream = LatencyTargets(ttft_s=5.0, tbt_s=0.060)  # 48 ms: 19 tokens a step
    for i in range(4):
        sched.add(make_seq(f"b{i}", prompt_len=32, max_tokens=300, lane=bulk_lane(0.25)))
    step(sched)
    for i in range(30):  # 30 decodes alone cost 70 ms: over the budget on their own
        sched.add(make_seq(f"s{i}", prompt_len=8, max_tokens=500, lane=STREAMING, targets=slow_stream))
    for _ in range(3):
        step(sched)
    steps_with_bulk = 0
    for _ in range(40):
        result = step(sched)
        # Its slice: 25% of 48 ms is 12 ms, room for all four bulk decodes (8 ms).
        steps_with_bulk += bulk_tokens(result) == 4
    assert steps_with_bulk == 40


def test_without_a_min_share_bulk_waits_for_the_streams() -> None:
    sched = big_scheduler()
    slow_stream = LatencyTargets(ttft_s=5.0, tbt_s=0.060)
    for i in range(4):
        sched.add(make_seq(f"b{i}", prompt_len=32, max_tokens=30, lane=BULK))
    step(sched)
    for i in range(30):
        sched.add(make_seq(f"s{i}", prompt_len=8, max_tokens=500, lane=STREAMING, targets=slow_stream))
    for _ in range(3):
        step(sched)
    result = step(sched)
    assert bulk_tokens(result) == 0
    assert {s.seq_id for s in result.output.sat_out} == {f"b{i}" for i in range(4)}


def test_equal_priorities_take_turns_when_only_some_fit() -> None:
    sched = big_scheduler()
    stream = LatencyTargets(ttft_s=5.0, tbt_s=0.050)  # 40 ms: one stream + 14 more decodes
    sched.add(make_seq("stream", prompt_len=8, max_tokens=100_000, lane=STREAMING, targets=stream))
    bulk = [make_seq(f"b{i}", prompt_len=8, max_tokens=20, lane=BULK) for i in range(40)]
    for seq in bulk:
        sched.add(seq)
    last_seen: dict[str, int] = {}
    longest_gap = 0
    for n in range(2000):
        if all(seq.status.is_finished for seq in bulk):
            break
        result = step(sched)
        for seq_id in result.ids:
            if seq_id.startswith("b"):
                if seq_id in last_seen:
                    longest_gap = max(longest_gap, n - last_seen[seq_id])
                last_seen[seq_id] = n
    assert all(seq.status.is_finished for seq in bulk), "a bulk seq starved"
    # Running bulk seqs that do not all fit rotate: none waits more than a few steps.
    assert longest_gap <= 5, f"a running bulk seq waited {longest_gap} steps between tokens"


def test_an_arriving_interactive_prompt_starts_at_once_and_bulk_prefill_yields() -> None:
    sched = big_scheduler()
    for i in range(3):
        sched.add(make_seq(f"b{i}", prompt_len=2000, max_tokens=4, lane=BULK))
    step(sched)
    urgent = make_seq("inline", prompt_len=40, max_tokens=8, lane=INTERACTIVE, targets=INLINE)
    sched.add(urgent)
    result = step(sched)
    assert result.chunks[0].seq_id == "inline" or "inline" in result.ids
    chunk = next(c for c in result.chunks if c.seq_id == "inline")
    assert chunk.num_new_tokens == 40  # 10 + 80 ms, within a quarter of its 400 ms TTFT target
    # While the interactive lane is active, steps stay within a quarter of its TTFT target.
    assert COST.step_time(shape_of_chunks(result)) <= 0.25 * INLINE.ttft_s + 1e-9


def test_the_most_urgent_prompt_gets_a_chunk_even_when_streams_fill_the_step() -> None:
    sched = big_scheduler()
    tight = LatencyTargets(ttft_s=5.0, tbt_s=0.040)  # 32 ms: 11 tokens a step
    for i in range(20):
        sched.add(make_seq(f"s{i}", prompt_len=8, max_tokens=100, lane=STREAMING, targets=tight))
    while len(sched.running) < 20 or any(s.is_prefill for s in sched.running):
        step(sched)
    assert COST.step_time(StepShape.decode(20, 20)) > 0.032  # the streams alone fill the step
    sched.add(make_seq("inline", prompt_len=100, max_tokens=4, lane=INTERACTIVE, targets=INLINE))
    result = step(sched)
    chunk = next(c for c in result.chunks if c.seq_id == "inline")
    assert chunk.num_new_tokens == MIN_URGENT_CHUNK


def test_backlog_by_lane_ignores_lower_deferrable_work() -> None:
    sched = big_scheduler()
    for i in range(10):
        sched.add(make_seq(f"b{i}", prompt_len=1000, max_tokens=4, lane=BULK))
    sched.add(make_seq("inline", prompt_len=100, max_tokens=4, lane=INTERACTIVE, targets=INLINE))
    loads = {lane.name: lane for lane in sched.lane_loads()}
    assert loads["bulk"].num_waiting == 10 and loads["bulk"].num_queued_prefill_tokens == 10_000
    assert loads["interactive"].predicted_wait_s == pytest.approx(COST.step_time(StepShape.chunk(0, 100)))
    assert loads["bulk"].predicted_wait_s > 10 * COST.step_time(StepShape.chunk(0, 1000))


def test_bulk_headroom_shrinks_as_latency_work_fills_the_budget() -> None:
    sched = big_scheduler()
    sched.add(make_seq("stream", prompt_len=8, max_tokens=100, lane=STREAMING, targets=STREAM))
    step(sched)
    roomy = sched.num_bulk_slots()
    for i in range(20):
        sched.add(make_seq(f"s{i}", prompt_len=8, max_tokens=100, lane=STREAMING, targets=STREAM))
    step(sched)
    assert 0 <= sched.num_bulk_slots() < roomy


def test_a_bulk_floor_keeps_headroom_open_when_streams_fill_the_budget() -> None:
    sched = big_scheduler()
    slow_stream = LatencyTargets(ttft_s=5.0, tbt_s=0.060)  # 48 ms; 30 decodes cost 70 ms
    b0 = make_seq("b0", prompt_len=8, max_tokens=2, lane=bulk_lane(0.25))
    sched.add(b0)
    for i in range(30):
        sched.add(make_seq(f"s{i}", prompt_len=8, max_tokens=500, lane=STREAMING, targets=slow_stream))
    for _ in range(100):
        step(sched)
        if len(sched.running) == 30 and not any(s.is_prefill for s in sched.running):
            break
    # b0 is done: no bulk here now, but its lane's floor is remembered.
    assert b0.status.is_finished and not any(s.lane.is_deferrable for s in sched.running)
    # 25% of 48 ms is 12 ms: six more bulk decodes at 2 ms each.
    assert sched.num_bulk_slots() == 6


def test_running_streams_never_skip_a_step_even_over_the_budget() -> None:
    sched = big_scheduler()
    tight = LatencyTargets(ttft_s=5.0, tbt_s=0.040)  # 32 ms: 11 decodes fit
    for i in range(30):
        sched.add(make_seq(f"s{i}", prompt_len=8, max_tokens=500, lane=STREAMING, targets=tight))
    for _ in range(40):
        running_before = {s.seq_id for s in sched.running if not s.is_prefill}
        result = step(sched)
        assert running_before <= set(result.ids), "a running stream sat a step out"
