"""The scheduler's fair lanes: order by tenant, a slot for an under-served tenant, suspend and resume.

No model: steps are driven by hand (factories.step). Only the memory of a shared lane reads the
clock, and its test moves the clock by hand.
"""

from __future__ import annotations

import time

import workers.engine.scheduler as scheduler_module
from tests.workers.engine.factories import make_scheduler, make_seq, step
from workers.engine.scheduler import FAIR_MEMORY_S, SHARED_LANE_PREFILL_TOKENS, Scheduler
from workers.engine.sequence import LanePolicy, SeqStatus, Sequence

FAIR = LanePolicy(name="streaming", priority=1, preemptible=False, fair_tenants=True)
FCFS = LanePolicy(name="streaming", priority=1, preemptible=False)


def _add(sched: Scheduler, tenant: str, n: int, lane: LanePolicy, prompt_len: int = 8, max_tokens: int = 32,
         weight: float = 1.0) -> list[Sequence]:
    seqs = [make_seq(f"{tenant}{i}", prompt_len, max_tokens=max_tokens, lane=lane, tenant=tenant,
                     tenant_weight=weight, ignore_eos=True) for i in range(n)]
    for seq in seqs:
        sched.add(seq)
    return seqs


def _saturated(lane: LanePolicy) -> tuple[Scheduler, list[Sequence]]:
    """4 slots, all taken by the noisy tenant, 2 more of its seqs waiting."""
    sched = make_scheduler(num_blocks=64, max_num_seqs=4, max_num_batched_tokens=64)
    noisy = _add(sched, "noisy", 6, lane)
    step(sched)
    step(sched)
    assert {s.seq_id for s in sched.running} == {"noisy0", "noisy1", "noisy2", "noisy3"}
    return sched, noisy


def test_a_waiting_seq_of_a_quiet_tenant_goes_before_a_noisy_backlog():
    sched = make_scheduler(num_blocks=64, max_num_seqs=2, max_num_batched_tokens=64)
    _add(sched, "noisy", 4, FAIR)
    _add(sched, "quiet", 1, FAIR)
    assert sorted(step(sched).ids) == ["noisy0", "quiet0"], "the quiet tenant takes the second slot"


def test_a_fcfs_lane_serves_in_arrival_order():
    sched = make_scheduler(num_blocks=64, max_num_seqs=2, max_num_batched_tokens=64)
    _add(sched, "noisy", 4, FCFS)
    _add(sched, "quiet", 1, FCFS)
    assert sorted(step(sched).ids) == ["noisy0", "noisy1"]


def test_an_under_served_tenant_gets_a_slot_at_once_and_the_set_aside_seq_keeps_its_kv():
    sched, noisy = _saturated(FAIR)
    victim = noisy[3]  # the newest running seq of the tenant over its share
    computed, blocks = victim.num_computed_tokens, list(victim.block_table)
    (quiet,) = _add(sched, "quiet", 1, FAIR)
    result = step(sched)
    assert "quiet0" in result.ids and victim.seq_id not in result.ids
    assert result.output.suspended == [victim] and not result.output.preempted
    assert victim.status == SeqStatus.SUSPENDED
    assert victim.num_computed_tokens == computed and victim.block_table == blocks, "no recompute"
    assert quiet.status == SeqStatus.RUNNING


def test_a_fcfs_lane_makes_the_quiet_tenant_wait_for_a_slot():
    sched, _ = _saturated(FCFS)
    _add(sched, "quiet", 1, FCFS)
    result = step(sched)
    assert "quiet0" not in result.ids and not result.output.suspended


def test_the_set_aside_seq_resumes_where_it_stopped_when_a_slot_frees():
    sched, noisy = _saturated(FAIR)
    victim = noisy[3]
    (quiet,) = _add(sched, "quiet", 1, FAIR, max_tokens=2)
    step(sched)  # quiet prefills (and samples its first token)
    step(sched)  # quiet's last token: it finishes, its slot frees
    assert quiet.status.is_finished and victim.status == SeqStatus.SUSPENDED
    computed = victim.num_computed_tokens
    result = step(sched)
    assert victim.status == SeqStatus.RUNNING and victim.seq_id in result.ids, "back before noisy4, noisy5"
    assert victim.num_preemptions == 0 and victim.num_computed_tokens == computed + 1
    assert "noisy4" not in result.ids


def test_a_tenant_within_its_share_takes_no_slot_from_another():
    sched = make_scheduler(num_blocks=64, max_num_seqs=4, max_num_batched_tokens=64)
    _add(sched, "noisy", 3, FAIR)
    _add(sched, "quiet", 3, FAIR)
    step(sched)
    running = sorted(s.tenant for s in sched.running)
    assert running == ["noisy", "noisy", "quiet", "quiet"], "fair order fills 2 + 2"
    result = step(sched)
    assert not result.output.suspended, "both at their share of 2: nobody is set aside"


def test_weight_buys_more_slots():
    sched = make_scheduler(num_blocks=64, max_num_seqs=4, max_num_batched_tokens=64)
    _add(sched, "small", 4, FAIR)
    step(sched)
    _add(sched, "big", 4, FAIR, weight=3.0)
    for _ in range(4):
        step(sched)
    assert sorted(s.tenant for s in sched.running) == ["big", "big", "big", "small"], "shares 3 and 1"


def test_prefill_budget_goes_to_the_under_served_tenant_first():
    # One 64-token prompt of the noisy tenant is mid-way (16 tokens a step); the quiet tenant's
    # 8-token prompt arrives: its prompt is computed in full this step, the noisy chunk gets the rest.
    sched = make_scheduler(num_blocks=64, max_num_seqs=4, max_num_batched_tokens=16)
    (long,) = _add(sched, "noisy", 1, FAIR, prompt_len=64)
    step(sched)
    _add(sched, "quiet", 1, FAIR)
    chunks = {c.seq_id: c.num_new_tokens for c in step(sched).chunks}
    assert chunks == {"quiet0": 8, "noisy0": 8}
    assert long.num_computed_tokens == 24


def test_under_fcfs_the_ongoing_prompt_takes_the_budget_first():
    sched = make_scheduler(num_blocks=64, max_num_seqs=4, max_num_batched_tokens=16)
    _add(sched, "noisy", 1, FCFS, prompt_len=64)
    step(sched)
    _add(sched, "quiet", 1, FCFS)
    assert {c.seq_id: c.num_new_tokens for c in step(sched).chunks} == {"noisy0": 16}


def test_kv_held_by_a_set_aside_seq_goes_to_the_under_served_tenant_when_short():
    # 8 blocks of 4 tokens. The noisy tenant runs two 12-token prompts (3 blocks each, a 4th
    # as they decode); the quiet tenant's 8-token prompt needs 2 blocks and a slot: noisy1 is
    # set aside, and since KV is short too, preempted (it is recomputed later).
    sched = make_scheduler(num_blocks=8, max_num_seqs=2, max_num_batched_tokens=64)
    noisy = _add(sched, "noisy", 2, FAIR, prompt_len=12, max_tokens=8)
    step(sched)
    (quiet,) = _add(sched, "quiet", 1, FAIR, prompt_len=8, max_tokens=8)
    result = step(sched)
    assert quiet.status == SeqStatus.RUNNING and "quiet0" in result.ids
    assert result.output.suspended == [noisy[1]] and result.output.preempted == [noisy[1]]
    assert noisy[1].status == SeqStatus.WAITING and noisy[1].num_computed_tokens == 0
    while sched.has_unfinished:  # and everyone still finishes
        step(sched)
    assert all(s.status == SeqStatus.FINISHED_LENGTH for s in [*noisy, quiet])


def test_aborting_a_set_aside_seq_frees_its_kv():
    sched, noisy = _saturated(FAIR)
    _add(sched, "quiet", 1, FAIR)
    step(sched)
    victim = noisy[3]
    assert victim.status == SeqStatus.SUSPENDED
    free_before = sched.block_manager.num_free_blocks
    assert sched.abort(victim.seq_id)
    result = step(sched)
    assert victim in result.output.aborted and victim.status == SeqStatus.FINISHED_ABORTED
    assert sched.block_manager.num_free_blocks > free_before - 2  # its blocks came back (others grew by <= 1)
    assert not sched.suspended


def test_suspended_seqs_count_as_waiting_in_the_load_report():
    sched, _ = _saturated(FAIR)
    _add(sched, "quiet", 1, FAIR)
    step(sched)
    assert sched.num_running == 4 and sched.num_waiting == 3  # noisy4, noisy5 and the set-aside one
    (load,) = sched.lane_loads()
    assert load.num_running == 4 and load.num_waiting == 3


# -- short steps while a fair lane is shared ---------------------------------------------


def _long_prompt_scheduler() -> Scheduler:
    return make_scheduler(num_blocks=400, block_size=4, max_num_seqs=8, max_num_batched_tokens=512, max_model_len=1024)


def _prefill_tokens(result) -> int:
    return sum(c.num_new_tokens for c in result.chunks if c.num_new_tokens > 1)


def test_a_fair_lane_with_one_tenant_takes_whole_prompt_chunks():
    sched = _long_prompt_scheduler()
    _add(sched, "noisy", 2, FAIR, prompt_len=400)
    assert _prefill_tokens(step(sched)) == 512


def test_a_shared_fair_lane_cuts_long_prompts_into_short_chunks_and_the_quiet_prompt_leads():
    sched = _long_prompt_scheduler()
    _add(sched, "noisy", 2, FAIR, prompt_len=400)
    _add(sched, "quiet", 1, FAIR, prompt_len=32)
    result = step(sched)
    assert result.chunks[0].seq_id == "quiet0" and result.chunks[0].num_new_tokens == 32
    assert _prefill_tokens(result) == SHARED_LANE_PREFILL_TOKENS
    # Step after step the noisy prompts go on in short chunks, beside the quiet decode.
    later = step(sched)
    assert _prefill_tokens(later) <= SHARED_LANE_PREFILL_TOKENS and "quiet0" in later.ids


def test_a_fcfs_lane_shared_by_two_tenants_keeps_whole_chunks():
    sched = _long_prompt_scheduler()
    _add(sched, "noisy", 2, FCFS, prompt_len=400)
    _add(sched, "quiet", 1, FCFS, prompt_len=32)
    assert _prefill_tokens(step(sched)) == 512


def test_the_short_steps_end_once_the_other_tenant_has_been_gone_for_fair_memory_s(monkeypatch):
    sched = _long_prompt_scheduler()
    (quiet,) = _add(sched, "quiet", 1, FAIR, prompt_len=32, max_tokens=1)
    step(sched)  # quiet prefills and finishes
    assert quiet.status.is_finished
    _add(sched, "noisy", 2, FAIR, prompt_len=400)
    assert sched.is_fair_lane_shared()
    now = time.time()
    monkeypatch.setattr(scheduler_module.time, "time", lambda: now + FAIR_MEMORY_S + 1)
    for seq in sched.waiting:  # the noisy tenant keeps arriving; the quiet one has gone
        seq.arrival_time = now + FAIR_MEMORY_S + 1
    sched._fair_arrivals["streaming"]["noisy"] = now + FAIR_MEMORY_S + 1
    assert not sched.is_fair_lane_shared()
    assert _prefill_tokens(step(sched)) == 512
