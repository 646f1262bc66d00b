"""Ending sequences: max_tokens, eos, stop ids, stop strings from outside, aborts."""

from __future__ import annotations

import pytest

from tests.workers.engine.factories import fake_token, make_scheduler, make_seq, step
from workers.engine.sequence import SeqStatus


def test_abort_waiting_seq() -> None:
    sched = make_scheduler()
    seq = make_seq("a")
    sched.add(seq)
    assert sched.abort("a")
    result = step(sched)
    assert result.output.aborted == [seq] and result.ids == []
    assert seq.status == SeqStatus.FINISHED_ABORTED
    assert sched.get("a") is None and not sched.has_unfinished


def test_abort_frees_blocks_in_the_same_schedule_call() -> None:
    sched = make_scheduler(num_blocks=8, block_size=4)
    seq = make_seq("a", prompt_len=10, max_tokens=20)
    other = make_seq("b", prompt_len=3, max_tokens=20)
    sched.add(seq)
    sched.add(other)
    step(sched)
    assert sched.block_manager.num_free_blocks == 8 - 3 - 1
    assert sched.abort("a")
    assert seq.status == SeqStatus.RUNNING  # only marked until the next step
    output = sched.schedule()
    assert output.aborted == [seq]
    assert [s.seq for s in output.scheduled] == [other]
    assert seq.block_table == [] and sched.block_manager.num_free_blocks == 8 - 1
    sched.check_integrity()


def test_abort_unknown_or_finished_returns_false() -> None:
    sched = make_scheduler()
    assert not sched.abort("nope")
    seq = make_seq("a", max_tokens=1)
    sched.add(seq)
    step(sched)
    assert seq.status.is_finished
    assert not sched.abort("a")


def test_abort_of_a_seq_that_finishes_first_is_not_reported() -> None:
    sched = make_scheduler()
    seq = make_seq("a", max_tokens=1)
    sched.add(seq)
    output = sched.schedule()
    assert sched.abort("a")
    sched.postprocess(output, {"a": fake_token(seq)})  # finishes by length
    assert step(sched).output.aborted == []
    assert seq.status == SeqStatus.FINISHED_LENGTH


def test_eos_stops_unless_ignored() -> None:
    sched = make_scheduler()
    stops = make_seq("stops", eos_token_id=7, max_tokens=10)
    ignores = make_seq("ignores", eos_token_id=7, max_tokens=3, ignore_eos=True)
    sched.add(stops)
    sched.add(ignores)
    result = step(sched, sample=lambda seq: 7)
    assert result.changed == [stops, ignores]
    assert stops.status == SeqStatus.FINISHED_STOPPED and stops.output_token_ids == [7]
    assert ignores.status == SeqStatus.RUNNING
    step(sched, sample=lambda seq: 7)
    step(sched, sample=lambda seq: 7)
    assert ignores.status == SeqStatus.FINISHED_LENGTH and ignores.output_token_ids == [7, 7, 7]
    assert sched.block_manager.num_free_blocks == sched.block_manager.num_total_blocks


def test_stop_token_ids_stop_even_with_ignore_eos() -> None:
    sched = make_scheduler()
    seq = make_seq("a", max_tokens=10, ignore_eos=True, stop_token_ids=(5,))
    sched.add(seq)
    step(sched, sample=lambda s: 4)
    assert seq.status == SeqStatus.RUNNING
    step(sched, sample=lambda s: 5)
    assert seq.status == SeqStatus.FINISHED_STOPPED


def test_finish_from_outside_frees_blocks() -> None:
    sched = make_scheduler(num_blocks=8)
    seq = make_seq("a", prompt_len=9, max_tokens=10)
    sched.add(seq)
    step(sched)
    sched.finish(seq, SeqStatus.FINISHED_STOPPED)  # e.g. the detokenizer matched a stop string
    assert seq.status == SeqStatus.FINISHED_STOPPED and seq.block_table == []
    assert sched.block_manager.num_free_blocks == 8 and not sched.has_unfinished
    assert step(sched).ids == []
    with pytest.raises(AssertionError, match="not an unfinished sequence"):
        sched.finish(seq, SeqStatus.FINISHED_STOPPED)


def test_finish_a_waiting_seq() -> None:
    sched = make_scheduler()
    seq = make_seq("a")
    sched.add(seq)
    sched.finish(seq, SeqStatus.FINISHED_ABORTED)
    assert sched.num_waiting == 0 and not sched.has_unfinished
    with pytest.raises(AssertionError, match="unfinished status"):
        sched.finish(make_seq(), SeqStatus.RUNNING)
