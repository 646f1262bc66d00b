"""Preemption by recompute: who may preempt whom, what a victim loses and keeps."""

from __future__ import annotations

from tests.workers.engine.factories import (
    BULK,
    INTERACTIVE,
    STREAMING,
    make_scheduler,
    make_seq,
    run_until_done,
    step,
)
from workers.engine.sequence import LanePolicy, SeqStatus, Sequence


def reference_output(seq: Sequence) -> list[int]:
    """What seq generates alone in a big cache (the fake model is deterministic)."""
    prompt = seq.token_ids[: seq.num_prompt_tokens]
    alone = make_seq(seq.seq_id, token_ids=prompt, max_tokens=seq.sampling.max_tokens)
    sched = make_scheduler(num_blocks=64, max_num_batched_tokens=64)
    sched.add(alone)
    run_until_done(sched)
    return alone.output_token_ids


def test_growth_preempts_the_lowest_priority_running_seq_and_it_is_recomputed() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    urgent = make_seq("urgent", prompt_len=4, max_tokens=8, lane=INTERACTIVE)
    victim = make_seq("victim", prompt_len=12, max_tokens=3, lane=BULK)
    sched.add(urgent)
    sched.add(victim)
    first = step(sched)
    assert set(first.ids) == {"urgent", "victim"}
    assert sched.block_manager.num_free_blocks == 0
    second = step(sched)  # urgent's decode needs a second block
    assert second.output.preempted == [victim]
    assert second.ids == ["urgent"]
    assert victim.status == SeqStatus.WAITING and victim.num_preemptions == 1
    assert victim.num_computed_tokens == 0 and victim.block_table == []
    assert victim.num_output_tokens == 1  # its generated token stays, to be recomputed
    results = run_until_done(sched)
    readmitted = next(c for r in results for c in r.chunks if c.seq_id == "victim")
    assert readmitted.start < 13  # recomputed (partly from its own cached blocks)
    assert victim.status == SeqStatus.FINISHED_LENGTH
    assert victim.output_token_ids == reference_output(victim)


def test_growth_preempts_a_later_preemptible_seq_of_equal_priority() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    earlier = make_seq("earlier", prompt_len=8, max_tokens=6, lane=BULK)
    later = make_seq("later", prompt_len=8, max_tokens=6, lane=BULK)
    sched.add(earlier)
    sched.add(later)
    step(sched)
    result = step(sched)
    assert result.output.preempted == [later]
    assert result.ids == ["earlier"]


def test_growth_may_preempt_a_strictly_lower_non_preemptible_lane() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    urgent = make_seq("urgent", prompt_len=4, max_tokens=8, lane=INTERACTIVE)
    streaming = make_seq("streaming", prompt_len=12, max_tokens=3, lane=STREAMING)
    sched.add(urgent)
    sched.add(streaming)
    step(sched)
    result = step(sched)
    assert result.output.preempted == [streaming]


def test_equals_that_cannot_preempt_each_other_leave_it_to_the_last_one() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    first = make_seq("first", prompt_len=8, max_tokens=3, lane=INTERACTIVE)
    second = make_seq("second", prompt_len=8, max_tokens=3, lane=INTERACTIVE)
    sched.add(first)
    sched.add(second)
    step(sched)
    result = step(sched)  # both decodes need a third block; none is free
    assert result.output.preempted == [second]  # the last in order preempts itself
    assert result.ids == ["first"]  # and first gets the freed block in the same step
    run_until_done(sched)
    assert second.status.is_finished and second.num_preemptions == 1
    assert first.num_preemptions == 0


def test_waiting_seq_preempts_a_strictly_lower_preemptible_seq() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    hog = make_seq("hog", prompt_len=14, max_tokens=2, lane=BULK)
    sched.add(hog)
    step(sched)
    assert sched.block_manager.num_free_blocks == 0
    urgent = make_seq("urgent", prompt_len=6, lane=INTERACTIVE)
    sched.add(urgent)
    result = step(sched)
    assert result.output.preempted == [hog]
    assert "urgent" in result.ids and "hog" not in result.ids  # not readmitted in the same step
    assert hog.status == SeqStatus.WAITING


def test_waiting_seq_does_not_preempt_when_it_would_not_help() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    streaming = make_seq("streaming", prompt_len=3, max_tokens=2, lane=STREAMING)
    bulk = make_seq("bulk", prompt_len=10, max_tokens=3, lane=BULK)
    sched.add(streaming)
    sched.add(bulk)
    step(sched)  # streaming 1 block + bulk 3 blocks
    urgent = make_seq("urgent", prompt_len=14, max_tokens=1, lane=INTERACTIVE)  # needs all 4
    sched.add(urgent)
    result = step(sched)
    assert result.output.preempted == []  # bulk's 3 blocks would not be enough
    assert urgent.status == SeqStatus.WAITING
    while urgent.status == SeqStatus.WAITING:
        result = step(sched)
    # Once streaming is done, preempting bulk does free enough.
    assert streaming.status.is_finished
    assert result.output.preempted == [bulk]


def test_no_ping_pong_between_equal_priorities() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    first = make_seq("first", prompt_len=12, max_tokens=4, lane=BULK)
    sched.add(first)
    step(sched)
    second = make_seq("second", prompt_len=12, max_tokens=4, lane=BULK)
    sched.add(second)
    results = run_until_done(sched)
    assert all(not r.output.preempted for r in results)
    assert first.num_preemptions == second.num_preemptions == 0
    assert results[-1].ids == ["second"]


def test_non_preemptible_lane_is_not_preempted_by_a_waiting_seq() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    streaming = make_seq("streaming", prompt_len=12, max_tokens=4, lane=STREAMING)
    sched.add(streaming)
    step(sched)
    urgent = make_seq("urgent", prompt_len=7, max_tokens=1, lane=INTERACTIVE)  # needs 2 of the 4 blocks
    sched.add(urgent)
    results = run_until_done(sched)
    assert all(not r.output.preempted for r in results)
    assert streaming.num_preemptions == 0 and urgent.status.is_finished


def test_preemptible_flag_is_what_protects_a_lower_lane() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    unprotected = LanePolicy(name="streaming", priority=1, preemptible=True)
    lower = make_seq("lower", prompt_len=12, max_tokens=4, lane=unprotected)
    sched.add(lower)
    step(sched)
    sched.add(make_seq("urgent", prompt_len=8, max_tokens=2, lane=INTERACTIVE))
    assert step(sched).output.preempted == [lower]


def test_preempted_seq_keeps_its_place_ahead_of_newer_seqs() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_seqs=2, max_num_batched_tokens=64)
    old = make_seq("old", prompt_len=14, max_tokens=2, lane=BULK)
    sched.add(old)
    step(sched)
    sched.add(make_seq("urgent", prompt_len=8, max_tokens=3, lane=INTERACTIVE))
    assert step(sched).output.preempted == [old]
    newer = make_seq("newer", prompt_len=3, max_tokens=1, lane=BULK)
    sched.add(newer)
    assert sched.waiting == (old, newer)
    later = [r.ids for r in run_until_done(sched)]
    first_bulk = next(i for ids in later for i in ids if i in {"old", "newer"})
    assert first_bulk == "old"


def test_preempting_an_already_scheduled_decode_returns_its_tokens() -> None:
    # Bulk goes last in a step, so the victim already scheduled is another bulk seq: b_new
    # sat the last step out, goes first this step (turns), then b_old needs a block to grow
    # and takes b_new's, tokens and all.
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=8)
    b_old = make_seq("b-old", prompt_len=7, max_tokens=10, lane=BULK)
    b_new = make_seq("b-new", prompt_len=7, max_tokens=10, lane=BULK)
    sched.add(b_old)
    sched.add(b_new)
    assert [(c.seq_id, c.num_new_tokens) for c in step(sched).chunks] == [("b-old", 7), ("b-new", 1)]
    assert [(c.seq_id, c.num_new_tokens) for c in step(sched).chunks] == [("b-old", 1), ("b-new", 6)]
    # b-new got its first token a step later, so it goes first now; b-old (8 tokens, 2 blocks)
    # needs a third block for its next token and the cache is full.
    result = step(sched)
    assert result.output.preempted == [b_new]
    assert result.ids == ["b-old"]
    assert result.output.num_batched_tokens == 1


def test_victim_is_the_least_urgent_by_sort_key_deadline_included() -> None:
    sched = make_scheduler(num_blocks=6, block_size=4, max_num_batched_tokens=64)
    urgent = make_seq("urgent", prompt_len=4, max_tokens=8, lane=INTERACTIVE)
    early_no_deadline = make_seq("early-no-deadline", prompt_len=8, max_tokens=3, lane=BULK)
    late_with_deadline = make_seq("late-with-deadline", prompt_len=8, max_tokens=3, lane=BULK, deadline=1.0)
    for seq in (urgent, early_no_deadline, late_with_deadline):
        sched.add(seq)
    step(sched)
    result = step(sched)
    assert result.output.preempted == [early_no_deadline]  # no deadline sorts after any deadline


def test_after_a_preemption_less_urgent_waiting_seqs_are_not_admitted() -> None:
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    urgent = make_seq("urgent", prompt_len=4, max_tokens=8, lane=INTERACTIVE)
    hog = make_seq("hog", prompt_len=11, max_tokens=5, lane=BULK)
    sched.add(urgent)
    sched.add(hog)
    step(sched)  # urgent 1 block, hog 3 blocks
    tiny = make_seq("tiny", prompt_len=1, max_tokens=1, lane=BULK)
    sched.add(tiny)
    result = step(sched)  # urgent's decode needs a block: hog goes
    assert result.output.preempted == [hog]
    assert sched.block_manager.num_free_blocks == 2
    # tiny would fit, but blocks freed under pressure are kept for the running seqs.
    assert result.ids == ["urgent"] and tiny.status == SeqStatus.WAITING


def test_head_of_line_blocks_less_urgent_admissions() -> None:
    sched = make_scheduler(num_blocks=6, block_size=4, max_num_batched_tokens=64)
    holder = make_seq("holder", prompt_len=12, max_tokens=8, lane=STREAMING)  # non-preemptible
    sched.add(holder)
    step(sched)  # 3 blocks held, 3 free
    blocked = make_seq("blocked", prompt_len=16, max_tokens=1, lane=INTERACTIVE)  # needs 4
    small = make_seq("small", prompt_len=3, max_tokens=1, lane=BULK)  # would fit
    sched.add(blocked)
    sched.add(small)
    result = step(sched)
    assert result.ids == ["holder"]
    assert blocked.status == small.status == SeqStatus.WAITING
    run_until_done(sched)
    assert blocked.first_scheduled_time is not None and small.first_scheduled_time is not None
    assert blocked.first_scheduled_time <= small.first_scheduled_time


def test_a_victim_has_first_claim_over_less_urgent_waiting_seqs() -> None:
    sched = make_scheduler(num_blocks=6, block_size=4, max_num_batched_tokens=64)
    victim = make_seq("victim", prompt_len=16, max_tokens=4, lane=BULK)
    sched.add(victim)
    step(sched)
    urgent = make_seq("urgent", prompt_len=12, max_tokens=1, lane=INTERACTIVE)
    newer = make_seq("newer", prompt_len=3, max_tokens=1, lane=BULK)
    sched.add(urgent)
    sched.add(newer)
    result = step(sched)
    assert result.output.preempted == [victim]
    assert result.ids == ["urgent"]  # newer would fit in what is left, but victim comes first
    assert sched.waiting == (victim, newer)


def test_cached_tokens_count_the_prompt_as_first_admitted_not_the_recompute() -> None:
    # The victim's generated tokens fill a block that is cached when it is preempted, so its
    # recompute hits more tokens than its prompt has: usage reports the first admission.
    sched = make_scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    victim = make_seq("victim", prompt_len=4, max_tokens=12, lane=BULK)
    sched.add(victim)
    for _ in range(6):
        step(sched)
    assert victim.num_computed_tokens == 9 and victim.num_cached_tokens == 0
    urgent = make_seq("urgent", prompt_len=7, max_tokens=1, lane=INTERACTIVE)  # needs 2 of the 4 blocks
    sched.add(urgent)
    assert step(sched).output.preempted == [victim]
    results = run_until_done(sched)
    readmitted = next(c for r in results for c in r.chunks if c.seq_id == "victim")
    assert readmitted.start == 8, "the recompute hit the victim's prompt and generated blocks"
    assert victim.status == SeqStatus.FINISHED_LENGTH and victim.num_preemptions == 1
    assert victim.num_cached_tokens == 0 <= victim.num_prompt_tokens
