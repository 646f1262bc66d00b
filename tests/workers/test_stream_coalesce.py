"""Coalescing queued outputs: what is queued leaves together, nothing waits, errors travel alone."""

from __future__ import annotations

import asyncio

import pytest

from workers.engine.outputs import RequestOutput, Usage, merge
from workers.stream_coalesce import take_ready

USAGE = Usage(prompt_tokens=3, completion_tokens=3, cached_prompt_tokens=0, num_preemptions=0, queue_ms=1.0)


def _out(*ids: int, text: str = "", finish: str | None = None, error: str | None = None,
         lps: list | None = None) -> RequestOutput:
    return RequestOutput("s", list(ids), text, finish_reason=finish, usage=USAGE if finish else None,
                         logprobs=lps or [], error=error)


def _queue(*outs: RequestOutput) -> asyncio.Queue[RequestOutput]:
    q: asyncio.Queue[RequestOutput] = asyncio.Queue()
    for o in outs:
        q.put_nowait(o)
    return q


def test_merge_concatenates_in_order_and_keeps_the_last_finish():
    lp1, lp2 = (-0.1, [(1, -0.1)]), (-0.2, [(2, -0.2)])
    merged = merge([_out(1, text="a", lps=[lp1]), _out(2, text="b", lps=[lp2]), _out(3, text="c", finish="length")])
    assert merged.token_ids == [1, 2, 3]
    assert merged.text == "abc"
    assert merged.logprobs == [lp1, lp2]
    assert merged.finish_reason == "length" and merged.usage == USAGE


@pytest.mark.parametrize("outs", [
    [],
    [_out(1, finish="stop"), _out(2)],  # nothing follows a finish
    [_out(1), _out(error="boom")],
    [_out(1), RequestOutput("other", [2], "")],
])
def test_merge_refuses_what_cannot_be_one_message(outs):
    with pytest.raises(ValueError):
        merge(outs)


def test_a_reader_that_keeps_up_gets_one_token_per_message():
    q = _queue()
    out, held = take_ready(q, _out(7, text="x"))
    assert out.token_ids == [7] and held is None


def test_queued_outputs_leave_together_and_stop_at_the_finish():
    q = _queue(_out(2, text="b"), _out(3, text="c", finish="stop"), _out(9))
    out, held = take_ready(q, _out(1, text="a"))
    assert out.token_ids == [1, 2, 3] and out.text == "abc" and out.finish_reason == "stop"
    assert held is None
    assert q.qsize() == 1  # nothing is taken past the finishing output


def test_an_error_behind_tokens_is_handed_back_after_them():
    err = _out(error="engine failure")
    q = _queue(_out(2), err, _out(3))
    out, held = take_ready(q, _out(1))
    assert out.token_ids == [1, 2]
    assert held is err
    assert q.qsize() == 1


def test_an_error_first_is_never_merged():
    q = _queue(_out(2))
    err = _out(error="boom")
    out, held = take_ready(q, err)
    assert out is err and held is None and q.qsize() == 1


def test_max_outputs_bounds_one_message():
    q = _queue(*[_out(i) for i in range(2, 10)])
    out, _ = take_ready(q, _out(1), max_outputs=4)
    assert out.token_ids == [1, 2, 3, 4]
    assert q.qsize() == 5


def test_another_choices_output_ends_the_merge_and_is_handed_back():
    # The choices of an n > 1 request share one queue: each message holds one choice's tokens.
    other = RequestOutput("s#1", [9], "z")
    q = _queue(_out(2, text="b"), other, _out(3))
    out, held = take_ready(q, _out(1, text="a"))
    assert out.seq_id == "s" and out.token_ids == [1, 2] and out.text == "ab"
    assert held is other
    assert q.qsize() == 1


def test_prompt_logprobs_survive_a_merge():
    plp = [(-0.5, [(4, -0.5)])]
    first = RequestOutput("s", [1], "a", prompt_logprobs=plp)
    merged = merge([first, _out(2, text="b")])
    assert merged.prompt_logprobs == plp and merged.token_ids == [1, 2]


# -- pacing (StreamPacer): one message per interval after the first ---------------------------
