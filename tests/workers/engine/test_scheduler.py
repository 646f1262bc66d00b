"""Scheduler: the catch-up rule, chunked prefill, budget, ordering, prefix hits."""

from __future__ import annotations

import pytest

from tests.workers.engine.factories import (
    BULK,
    INTERACTIVE,
    STREAMING,
    fake_token,
    make_scheduler,
    make_seq,
    run_until_done,
    step,
)
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import SeqStatus


def test_prefill_then_decode_until_max_tokens() -> None:
    sched = make_scheduler(max_num_batched_tokens=16)
    seq = make_seq("a", prompt_len=10, max_tokens=3)
    sched.add(seq)
    result = step(sched)
    assert [(c.start, c.num_new_tokens, c.needs_sample) for c in result.chunks] == [(0, 10, True)]
    assert result.changed == [seq] and seq.num_tokens == 11 and seq.first_scheduled_time is not None
    result = step(sched)
    assert [(c.start, c.num_new_tokens) for c in result.chunks] == [(10, 1)]
    result = step(sched)
    assert result.changed == [seq] and seq.status == SeqStatus.FINISHED_LENGTH
    assert seq.num_output_tokens == 3
    assert not sched.has_unfinished and sched.get("a") is None
    assert sched.block_manager.num_free_blocks == sched.block_manager.num_total_blocks


def test_long_prompt_is_chunked_while_a_decode_runs_every_step() -> None:
    sched = make_scheduler(num_blocks=32, max_num_batched_tokens=8)
    decoder = make_seq("decoder", prompt_len=3, max_tokens=20)
    sched.add(decoder)
    step(sched)
    long_prompt = make_seq("long", prompt_len=30, max_tokens=2)
    sched.add(long_prompt)
    chunks = []
    while long_prompt.num_output_tokens == 0:
        result = step(sched)
        assert "decoder" in result.ids, "a decode stalled behind a long prompt"
        assert result.ids[0] == "decoder"  # decodes first
        assert result.output.num_batched_tokens <= 8
        chunks += [c.num_new_tokens for c in result.chunks if c.seq_id == "long"]
    assert chunks == [7, 7, 7, 7, 2]
    assert sum(chunks) == 30


def test_running_prefill_continues_before_new_prompts_of_its_priority() -> None:
    sched = make_scheduler(num_blocks=32, max_num_batched_tokens=8)
    first = make_seq("first", prompt_len=12)
    sched.add(first)
    step(sched)
    assert first.num_computed_tokens == 8 and first.status == SeqStatus.RUNNING
    later = make_seq("later", prompt_len=12)  # same lane: no overtaking a started prompt
    sched.add(later)
    result = step(sched)
    assert [(c.seq_id, c.num_new_tokens) for c in result.chunks] == [("first", 4), ("later", 4)]


def test_more_urgent_arrival_prefills_before_a_running_bulk_prompt() -> None:
    sched = make_scheduler(num_blocks=32, max_num_batched_tokens=8)
    first = make_seq("first", prompt_len=12, lane=BULK)
    sched.add(first)
    step(sched)
    assert first.num_computed_tokens == 8 and first.status == SeqStatus.RUNNING
    later = make_seq("later", prompt_len=12, lane=INTERACTIVE)
    sched.add(later)
    result = step(sched)
    assert [(c.seq_id, c.num_new_tokens) for c in result.chunks] == [("later", 8)]
    result = step(sched)  # the interactive prompt finishes its prefill, the bulk one resumes beside it
    assert dict((c.seq_id, c.num_new_tokens) for c in result.chunks) == {"later": 4, "first": 4}


def test_budget_and_sequence_cap_are_never_exceeded() -> None:
    sched = make_scheduler(num_blocks=64, max_num_seqs=3, max_num_batched_tokens=10)
    for i in range(7):
        sched.add(make_seq(f"s{i}", prompt_len=4 + i, max_tokens=5))
    for result in run_until_done(sched):
        assert result.output.num_batched_tokens <= 10
        assert len(result.chunks) <= 3
        assert sched.num_running <= 3


def test_waiting_order_is_priority_then_deadline_then_arrival() -> None:
    sched = make_scheduler(num_blocks=64, max_num_seqs=1, max_num_batched_tokens=64)
    seqs = [
        make_seq("bulk", lane=BULK, max_tokens=1),
        make_seq("streaming", lane=STREAMING, max_tokens=1),
        make_seq("interactive-late-deadline", lane=INTERACTIVE, deadline=200.0, max_tokens=1),
        make_seq("interactive-no-deadline", lane=INTERACTIVE, max_tokens=1),
        make_seq("interactive-early-deadline", lane=INTERACTIVE, deadline=100.0, max_tokens=1),
        make_seq("interactive-no-deadline-2", lane=INTERACTIVE, max_tokens=1),
    ]
    for seq in seqs:
        sched.add(seq)
    order = [result.ids[0] for result in run_until_done(sched)]
    assert order == [
        "interactive-early-deadline",
        "interactive-late-deadline",
        "interactive-no-deadline",
        "interactive-no-deadline-2",
        "streaming",
        "bulk",
    ]


def test_prefix_hit_skips_computed_tokens() -> None:
    sched = make_scheduler(num_blocks=32, block_size=4, max_num_batched_tokens=64)
    system_prompt = list(range(100, 112))
    first = make_seq("first", token_ids=[*system_prompt, 1, 2], max_tokens=1)
    sched.add(first)
    run_until_done(sched)
    second = make_seq("second", token_ids=[*system_prompt, 3, 4, 5], max_tokens=1)
    sched.add(second)
    result = step(sched)
    assert [(c.start, c.num_new_tokens) for c in result.chunks] == [(12, 3)]
    assert second.num_cached_tokens == 12
    bm = sched.block_manager
    assert bm.num_prefix_hit_tokens == 12
    assert bm.num_prefix_queried_tokens == 14 + 15


def test_identical_prompt_recomputes_only_the_last_token() -> None:
    sched = make_scheduler(num_blocks=32, block_size=4, max_num_batched_tokens=64)
    prompt = list(range(200, 212))
    sched.add(make_seq("first", token_ids=prompt, max_tokens=1))
    run_until_done(sched)
    again = make_seq("again", token_ids=prompt, max_tokens=1)
    sched.add(again)
    result = step(sched)
    assert [(c.start, c.num_new_tokens, c.needs_sample) for c in result.chunks] == [(8, 4, True)]


def test_max_model_len_finishes_with_length() -> None:
    sched = make_scheduler(max_model_len=12)
    seq = make_seq(prompt_len=10, max_tokens=100)
    sched.add(seq)
    run_until_done(sched)
    assert seq.status == SeqStatus.FINISHED_LENGTH
    assert seq.num_tokens == 12


def test_add_refuses_what_this_worker_cannot_take_and_queues_nothing() -> None:
    sched = make_scheduler(max_model_len=12)
    with pytest.raises(InvalidRequest, match="max_model_len is 12"):
        sched.add(make_seq(prompt_len=12))
    small_cache = make_scheduler(num_blocks=2, block_size=4)
    with pytest.raises(InvalidRequest, match="needs 3 KV blocks at full length; this worker has 2"):
        small_cache.add(make_seq(prompt_len=8, max_tokens=2))
    assert not small_cache.has_unfinished
    small_cache.add(make_seq(prompt_len=8, max_tokens=1))  # the last token is never computed
    dup = make_seq("dup")
    sched.add(dup)
    with pytest.raises(InvalidRequest, match="duplicate request_id 'dup'"):
        sched.add(make_seq("dup"))
    assert sched.waiting == (dup,)
    sched.check_integrity()


def test_counters() -> None:
    sched = make_scheduler(num_blocks=64, max_num_seqs=2, max_num_batched_tokens=8)
    a = make_seq("a", prompt_len=6, lane=INTERACTIVE, max_tokens=8)
    b = make_seq("b", prompt_len=10, lane=BULK)
    c = make_seq("c", prompt_len=5, lane=BULK)
    for seq in (a, b, c):
        sched.add(seq)
    assert (sched.num_running, sched.num_waiting, sched.num_queued_prefill_tokens) == (0, 3, 21)
    assert sched.get("b") is b and sched.get("nope") is None
    step(sched)  # a: 6 tokens, b: first 2
    assert (sched.num_running, sched.num_waiting) == (2, 1)
    assert sched.num_queued_prefill_tokens == 8 + 5
    occupancy = sched.lane_occupancy()
    assert occupancy["interactive"].num_running == 1 and occupancy["interactive"].num_blocks == 2
    assert occupancy["bulk"].num_running == 1 and occupancy["bulk"].num_waiting == 1
    assert sched.has_unfinished


def test_postprocess_requires_exactly_the_sampled_seqs() -> None:
    sched = make_scheduler(max_num_batched_tokens=4)
    seq = make_seq("a", prompt_len=6)
    sched.add(seq)
    output = sched.schedule()  # a 4-token chunk of 6: nothing to sample yet
    with pytest.raises(AssertionError, match="sampled tokens"):
        sched.postprocess(output, {"a": fake_token(seq)})


def test_changed_seqs_come_in_scheduling_order() -> None:
    sched = make_scheduler(num_blocks=64, max_num_batched_tokens=64)
    seqs = [make_seq("s0", prompt_len=3, max_tokens=2, lane=BULK), make_seq("s1", prompt_len=3, lane=INTERACTIVE)]
    for seq in seqs:
        sched.add(seq)
    result = step(sched)
    assert result.changed == [s.seq for s in result.output.scheduled] == [seqs[1], seqs[0]]
