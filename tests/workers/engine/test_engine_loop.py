"""The engine thread refuses a request it cannot take (InvalidRequest) alone and keeps serving."""

from __future__ import annotations

import queue
import time

import torch

from tests.workers.engine.gated_engine import make_gated_engine
from workers.engine.engine_loop import EngineLoop
from workers.engine.outputs import RequestOutput
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import SamplingParams, Sequence


def _seq(seq_id: str, prompt: list[int], max_tokens: int) -> tuple[Sequence, queue.SimpleQueue[RequestOutput]]:
    seq = Sequence(seq_id, list(prompt), SamplingParams(max_tokens=max_tokens))
    outputs: queue.SimpleQueue[RequestOutput] = queue.SimpleQueue()
    seq.on_output = outputs.put
    return seq, outputs


def _until_finished(outputs: queue.SimpleQueue[RequestOutput]) -> list[RequestOutput]:
    got = [outputs.get(timeout=30)]
    while not got[-1].is_finished:
        got.append(outputs.get(timeout=30))
    return got


def test_bad_sequences_are_refused_alone_and_the_engine_keeps_serving() -> None:
    engine, runner = make_gated_engine(num_blocks=8, block_size=4, max_model_len=64)  # 32 tokens of KV
    loop = EngineLoop(engine)
    a, a_out = _seq("a", [1, 2, 3], max_tokens=12)
    duplicate, duplicate_out = _seq("a", [4, 5], max_tokens=2)
    too_big, too_big_out = _seq("big", list(range(1, 30)), max_tokens=20)  # 48 tokens at full length
    too_long, too_long_out = _seq("long", list(range(1, 65)), max_tokens=1)  # no room for one token
    after, after_out = _seq("after", [6, 7], max_tokens=3)
    # Queued before the thread starts, so they reach the engine in this order, "a" first.
    for seq in (a, duplicate, too_big, too_long, after):
        loop.add(seq)
    runner.gate.set()
    loop.start()
    try:
        refused = {"duplicate": _until_finished(duplicate_out), "too_big": _until_finished(too_big_out),
                   "too_long": _until_finished(too_long_out)}
        served_a, served_after = _until_finished(a_out), _until_finished(after_out)
    finally:
        loop.stop()

    for name, outs in refused.items():
        assert len(outs) == 1 and outs[0].token_ids == [] and outs[0].finish_reason == "abort", name
        assert outs[0].error is None, name  # input, not an engine failure
    assert "duplicate request_id 'a'" in (refused["duplicate"][0].invalid_request or "")
    assert "needs 12 KV blocks at full length; this worker has 8" in (refused["too_big"][0].invalid_request or "")
    assert "max_model_len is 64" in (refused["too_long"][0].invalid_request or "")
    # The original "a" kept its stream (the refused duplicate took nothing of it), and the rest ran.
    assert sum(len(o.token_ids) for o in served_a) == 12 and served_a[-1].finish_reason == "length"
    assert sum(len(o.token_ids) for o in served_after) == 3 and served_after[-1].finish_reason == "length"
    assert all(o.invalid_request is None and o.error is None for o in served_a + served_after)
    assert loop.fatal_error is None
    engine.scheduler.check_integrity()
    assert engine.scheduler.block_manager.num_free_blocks == 8


def test_an_engine_failure_reports_first_then_fails_every_request_and_every_later_one() -> None:
    engine, runner = make_gated_engine()
    loop = EngineLoop(engine)
    events: list[str] = []
    loop.on_fatal = lambda exc: events.append(f"on_fatal {exc.__class__.__name__}")

    def failing_pass(out: object) -> None:
        raise MemoryError("out of device memory")

    runner.run = failing_pass  # type: ignore[method-assign]
    running, running_out = _seq("running", [1, 2, 3], max_tokens=4)
    running.on_output = lambda out: (events.append(f"output {out.seq_id}"), running_out.put(out))
    loop.add(running)
    loop.start()
    try:
        failed = _until_finished(running_out)
        late, late_out = _seq("late", [4, 5], max_tokens=2)
        loop.add(late)  # the thread is gone: the error comes from add() itself
        late_failed = _until_finished(late_out)
    finally:
        loop.stop()

    assert events == ["on_fatal MemoryError", "output running"], "health must hear of it before any stream"
    assert isinstance(loop.fatal_error, MemoryError)
    for outs in (failed, late_failed):
        assert len(outs) == 1 and outs[0].finish_reason == "abort" and outs[0].error == "engine failure: MemoryError"


def test_a_request_whose_tokenizer_fails_before_it_is_queued_fails_alone() -> None:
    engine, runner = make_gated_engine()
    decode = engine.tokenizer.decode

    def picky_decode(ids, skip_special_tokens: bool = True) -> str:
        if 99 in ids:
            raise KeyError("token 99 has no piece in this vocabulary")
        return decode(ids, skip_special_tokens)

    engine.tokenizer.decode = picky_decode  # type: ignore[method-assign]
    loop = EngineLoop(engine)
    odd, odd_out = _seq("odd", [1, 99, 3], max_tokens=2)
    fine, fine_out = _seq("fine", [1, 2, 3], max_tokens=2)
    loop.add(odd)
    loop.add(fine)
    runner.gate.set()
    loop.start()
    try:
        refused, served = _until_finished(odd_out), _until_finished(fine_out)
    finally:
        loop.stop()
    assert len(refused) == 1 and refused[0].error == "request failed: KeyError"
    assert sum(len(o.token_ids) for o in served) == 2 and served[-1].error is None
    assert loop.fatal_error is None and not engine.has_work()


def test_a_paced_sequence_hands_over_its_first_output_alone_and_the_rest_with_its_finish() -> None:
    """stream_interval_s (workers/engine/stream_pacing.py): steps here take no time, so every
    output after the first is held, and the final one takes them along: two hand-offs."""
    engine, runner = make_gated_engine()
    loop = EngineLoop(engine)
    paced, paced_out = _seq("paced", [1, 2, 3], max_tokens=6)
    paced.stream_interval_s = 60.0
    plain, plain_out = _seq("plain", [1, 2, 3], max_tokens=6)
    loop.add(paced)
    loop.add(plain)
    runner.gate.set()
    loop.start()
    try:
        got, got_plain = _until_finished(paced_out), _until_finished(plain_out)
    finally:
        loop.stop()
    assert [len(o.token_ids) for o in got] == [1, 5] and got[-1].finish_reason == "length"
    assert got[-1].usage is not None and got[-1].usage.completion_tokens == 6
    assert [len(o.token_ids) for o in got_plain] == [1] * 6, "an unpaced sequence gets every step's output"
    assert [t for o in got for t in o.token_ids] == [t for o in got_plain for t in o.token_ids]


def test_a_paced_sequence_whose_steps_outlast_the_interval_gets_every_output_at_once() -> None:
    engine, runner = make_gated_engine()
    loop = EngineLoop(engine)
    seq, outputs = _seq("slow", [1, 2, 3], max_tokens=3)
    seq.stream_interval_s = 0.02
    loop.add(seq)
    loop.start()
    try:
        for _ in range(3):
            time.sleep(0.03)  # each pass waits this long at the gate: steps longer than the interval
            runner.allow(1)
        got = _until_finished(outputs)
    finally:
        loop.stop()
    assert [len(o.token_ids) for o in got] == [1, 1, 1]


def test_an_engine_failure_hands_over_what_a_paced_sequence_held_before_the_error() -> None:
    engine, runner = make_gated_engine()
    loop = EngineLoop(engine)
    real_run = runner.run

    def third_pass_fails(out: SchedulerOutput) -> torch.Tensor:
        if runner.passes == 2:
            raise MemoryError("out of device memory")
        return real_run(out)

    runner.run = third_pass_fails  # type: ignore[method-assign]
    seq, outputs = _seq("held", [1, 2, 3], max_tokens=8)
    seq.stream_interval_s = 60.0
    loop.add(seq)
    runner.gate.set()
    loop.start()
    try:
        got = _until_finished(outputs)
    finally:
        loop.stop()
    assert [(len(o.token_ids), o.error) for o in got] == [(1, None), (1, None), (0, "engine failure: MemoryError")]
