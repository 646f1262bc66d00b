"""Per-lane admission caps: bulk fills idle capacity without taking all of it."""

from __future__ import annotations

from tests.workers.engine.factories import INTERACTIVE, make_scheduler, make_seq, step
from workers.engine.lane_caps import lane_block_cap, lane_seq_cap
from workers.engine.sequence import LanePolicy, SeqStatus

HALF_SEQS = LanePolicy(name="bulk", priority=2, preemptible=True, max_seq_share=0.5)
HALF_KV = LanePolicy(name="bulk", priority=2, preemptible=True, max_kv_share=0.5)


def test_cap_arithmetic() -> None:
    assert lane_seq_cap(LanePolicy(max_seq_share=0.3), 10) == 3  # not 4 from 3.0000000000000004
    assert lane_seq_cap(LanePolicy(max_seq_share=0.01), 10) == 1
    assert lane_block_cap(LanePolicy(max_kv_share=0.5), 7) == 3


def test_lane_sequence_cap_leaves_slots_for_other_lanes() -> None:
    sched = make_scheduler(num_blocks=64, max_num_seqs=4, max_num_batched_tokens=64)
    bulk = [make_seq(f"bulk-{i}", prompt_len=3, max_tokens=8, lane=HALF_SEQS) for i in range(4)]
    for seq in bulk:
        sched.add(seq)
    assert step(sched).ids == ["bulk-0", "bulk-1"]
    assert sched.lane_occupancy()["bulk"].num_running == 2
    assert sched.num_waiting == 2
    urgent = [make_seq(f"urgent-{i}", prompt_len=3, lane=INTERACTIVE) for i in range(2)]
    for seq in urgent:
        sched.add(seq)
    result = step(sched)
    assert set(result.ids) == {"bulk-0", "bulk-1", "urgent-0", "urgent-1"}
    assert result.output.preempted == []


def test_lane_kv_cap_stops_admission() -> None:
    sched = make_scheduler(num_blocks=16, block_size=4, max_num_seqs=8, max_num_batched_tokens=128)
    bulk = [make_seq(f"bulk-{i}", prompt_len=8, max_tokens=2, lane=HALF_KV) for i in range(6)]
    for seq in bulk:
        sched.add(seq)
    result = step(sched)
    assert result.ids == ["bulk-0", "bulk-1", "bulk-2", "bulk-3"]  # 4 x 2 blocks = half of 16
    assert sched.lane_occupancy()["bulk"].num_blocks == 8
    assert sched.block_manager.num_free_blocks == 8


def test_idle_lane_may_always_admit_one_sequence() -> None:
    sched = make_scheduler(num_blocks=8, block_size=4, max_num_batched_tokens=64)
    tiny = LanePolicy(name="bulk", priority=2, max_kv_share=0.25)  # 2 blocks
    big = make_seq("big", prompt_len=16, max_tokens=1, lane=tiny)  # 4 blocks
    sched.add(big)
    sched.add(make_seq("small", prompt_len=3, max_tokens=1, lane=tiny))
    assert step(sched).ids == ["big"]
    assert step(sched).ids == ["small"]


def test_capped_lane_keeps_fcfs_and_does_not_block_other_lanes() -> None:
    sched = make_scheduler(num_blocks=16, block_size=4, max_num_seqs=8, max_num_batched_tokens=128)
    sched.add(make_seq("bulk-big-0", prompt_len=20, max_tokens=3, lane=HALF_KV))  # 5 blocks
    sched.add(make_seq("bulk-big-1", prompt_len=20, max_tokens=3, lane=HALF_KV))  # 10 > cap of 8
    sched.add(make_seq("bulk-small", prompt_len=3, max_tokens=3, lane=HALF_KV))  # 6 would fit the cap
    sched.add(make_seq("streaming", prompt_len=3, max_tokens=3,
                       lane=LanePolicy(name="streaming", priority=3)))
    result = step(sched)
    assert result.ids == ["bulk-big-0", "streaming"]  # bulk-small does not overtake bulk-big-1
    waiting = [s.seq_id for s in sched.waiting]
    assert waiting == ["bulk-big-1", "bulk-small"]
    assert all(s.status == SeqStatus.WAITING for s in sched.waiting)


def test_shared_prefix_blocks_count_once_against_the_lane() -> None:
    sched = make_scheduler(num_blocks=8, block_size=4, max_num_seqs=8, max_num_batched_tokens=64)
    lane = LanePolicy(name="bulk", priority=2, max_kv_share=0.5)  # 4 blocks
    prefix = list(range(500, 508))
    first = make_seq("first", token_ids=[*prefix, 1], max_tokens=3, lane=lane)
    sched.add(first)
    step(sched)  # 3 blocks: 2 full prefix blocks + 1
    second = make_seq("second", token_ids=[*prefix, 2], max_tokens=3, lane=lane)
    sched.add(second)
    assert step(sched).ids == ["first", "second"]  # 2 shared + 1 + 1 = 4 distinct blocks
    assert second.num_cached_tokens == 8
    assert sched.lane_occupancy()["bulk"].num_blocks == 4
