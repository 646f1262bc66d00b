"""Pacing on the engine thread (workers/engine/stream_pacing.py): hold only while the next step
is expected to end before the oldest held output has waited an interval; never hold the
first, the last or an error."""

from __future__ import annotations

import pytest

from workers.engine.outputs import RequestOutput, Usage
from workers.engine.stream_pacing import StreamPacer

USAGE = Usage(prompt_tokens=3, completion_tokens=3, cached_prompt_tokens=0, num_preemptions=0, queue_ms=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _out(*ids: int, finish: str | None = None, error: str | None = None) -> RequestOutput:
    return RequestOutput("s", list(ids), "".join(chr(96 + i) for i in ids), finish_reason=finish,
                         usage=USAGE if finish else None, error=error)


def test_outputs_are_held_while_the_next_step_ends_before_the_oldest_has_waited_an_interval():
    clock = Clock()
    pacer = StreamPacer(0.05, clock)
    assert [o.token_ids for o in pacer.offer(_out(1), next_step_s=0.01)] == [[1]]  # the first: at once
    clock.now += 0.01  # token 2, the oldest held from now on: due at 0.06
    for token in (2, 3, 4, 5):
        assert pacer.offer(_out(token), next_step_s=0.01) == [] and pacer.is_holding
        clock.now += 0.01
    assert clock.now == pytest.approx(100.05)  # the next step would end at 0.06: token 2's due time
    sent = pacer.offer(_out(6), next_step_s=0.01)
    assert [(o.token_ids, o.text) for o in sent] == [([2, 3, 4, 5, 6], "bcdef")] and not pacer.is_holding
    clock.now += 0.01  # the next output is the oldest held again, for a whole interval
    assert pacer.offer(_out(7), next_step_s=0.01) == []


def test_steps_as_long_as_the_interval_hold_nothing():
    clock = Clock()
    pacer = StreamPacer(0.02, clock)
    sent = []
    for token in range(1, 6):
        sent += pacer.offer(_out(token), next_step_s=0.03)
        clock.now += 0.03
    assert [o.token_ids for o in sent] == [[1], [2], [3], [4], [5]]


def test_the_final_output_is_never_held():
    clock = Clock()
    pacer = StreamPacer(10.0, clock)
    pacer.offer(_out(1), next_step_s=0.0)
    assert pacer.offer(_out(2), next_step_s=0.0) == []
    sent = pacer.offer(_out(3, finish="length"), next_step_s=0.0)
    assert [(o.token_ids, o.finish_reason, o.usage) for o in sent] == [([2, 3], "length", USAGE)]
    assert not pacer.is_holding


def test_an_error_leaves_after_what_was_held_and_alone():
    clock = Clock()
    pacer = StreamPacer(10.0, clock)
    pacer.offer(_out(1), next_step_s=0.0)
    pacer.offer(_out(2), next_step_s=0.0)
    sent = pacer.offer(_out(error="engine failure"), next_step_s=0.0)
    assert [(o.token_ids, o.error) for o in sent] == [([2], None), ([], "engine failure")]
    assert not pacer.is_holding


def test_held_outputs_of_a_sequence_that_made_nothing_leave_when_due():
    """A preempted sequence makes no output in a step; the loop asks `due` instead."""
    clock = Clock()
    pacer = StreamPacer(0.05, clock)
    pacer.offer(_out(1), next_step_s=0.01)
    clock.now += 0.01
    pacer.offer(_out(2), next_step_s=0.01)  # due at 0.06
    clock.now += 0.03
    assert pacer.due(next_step_s=0.01) == [] and pacer.is_holding  # the next step ends at 0.05: early
    clock.now += 0.01
    assert [o.token_ids for o in pacer.due(next_step_s=0.01)] == [[2]]
    assert pacer.due(next_step_s=1.0) == []  # nothing held, nothing sent


def test_an_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval_s"):
        StreamPacer(0.0)
