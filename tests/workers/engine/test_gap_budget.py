"""The TBT targets' p95 as a budget of long gaps (gap_budget.py), and the scheduler spending
it on latency prompts that wait: a step may outrun the TBT cap, never the TTFT bound."""

from __future__ import annotations

from tests.workers.engine.factories import STREAMING, make_scheduler, make_seq, step
from tests.workers.engine.test_time_budget import COST, STREAM
from workers.engine.gap_budget import LONG_GAP_SHARE, MIN_GAPS, WINDOW_S, GapBudget
from workers.engine.scheduler import ARRIVAL_STEP_FRACTION, TBT_HEADROOM


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_cold_budget_allows_nothing_then_the_share_of_recent_gaps_and_forgets_old_ones() -> None:
    clock = Clock()
    budget = GapBudget(clock)
    assert not budget.allows(1), "no recent gaps: too few to judge"
    budget.record(MIN_GAPS - 1, 0)
    assert not budget.allows(1)
    budget.record(1001 - (MIN_GAPS - 1), 0)  # 1001 short gaps
    room = int(LONG_GAP_SHARE * 1001 / (1 - LONG_GAP_SHARE))  # long <= share * (gaps + long)
    assert budget.allows(room) and not budget.allows(room + 1)
    budget.record(room, room)  # spent
    assert not budget.allows(1)
    clock.now += WINDOW_S + 1
    budget.record(10, 0)
    assert not budget.allows(1), "the old gaps left the window: too few again"


def _stream(seq_id: str, prompt_len: int = 32):
    return make_seq(seq_id, prompt_len=prompt_len, max_tokens=64, lane=STREAMING, targets=STREAM)


def test_latency_prompts_waiting_get_a_long_step_only_while_the_budget_covers_the_streams_gaps() -> None:
    sched = make_scheduler(num_blocks=4096, block_size=16, max_num_seqs=64, max_num_batched_tokens=512,
                           max_model_len=4096, cost=COST)
    sched.add(_stream("first"))
    step(sched)  # prefilled: it decodes from now on
    for i in range(12):
        sched.add(_stream(f"burst-{i}"))
    cap, ttft_bound = STREAM.tbt_s * TBT_HEADROOM, STREAM.ttft_s * ARRIVAL_STEP_FRACTION
    capped = step(sched)
    assert capped.output.time_budget == cap, "a cold worker keeps the cap"
    sched.gap_budget.record(1000, 0)  # recent gaps, all short
    long_step = step(sched)
    assert long_step.output.time_budget == ttft_bound
    assert long_step.output.num_batched_tokens > capped.output.num_batched_tokens
    sched.gap_budget.record(1000, 1000)  # spent, and more
    assert step(sched).output.time_budget == cap


def test_with_no_prompt_waiting_the_cap_holds_whatever_the_budget() -> None:
    sched = make_scheduler(num_blocks=4096, block_size=16, max_num_seqs=64, max_num_batched_tokens=512,
                           max_model_len=4096, cost=COST)
    for i in range(3):
        sched.add(_stream(f"s{i}", prompt_len=8))
    step(sched)
    sched.gap_budget.record(10_000, 0)
    assert step(sched).output.time_budget == STREAM.tbt_s * TBT_HEADROOM


def test_a_step_records_a_gap_per_stream_past_its_first_token_and_the_long_ones() -> None:
    sched = make_scheduler(num_blocks=4096, block_size=16, max_num_seqs=64, max_num_batched_tokens=512,
                           max_model_len=4096, cost=COST)
    sched.add(_stream("old", prompt_len=8))
    step(sched)  # its first token: a TTFT, not a gap
    sched.add(_stream("new", prompt_len=8))
    result = step(sched)  # old decodes (a gap), new gets its first token (no gap)
    sched.record_gaps(result.output, step_s=STREAM.tbt_s * 2)
    sched.record_gaps(step(sched).output, step_s=STREAM.tbt_s / 2)  # both decode: two short gaps
    assert sched.gap_budget.recent == (3, 1)
