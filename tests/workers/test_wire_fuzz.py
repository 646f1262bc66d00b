"""Whatever a GenerateRequest holds, the worker refuses it at the wire (InvalidRequest, answered
INVALID_ARGUMENT) or serves it to the end: request data never reaches an assert or kills the
engine thread. Hypothesis writes the requests; the real engine loop (scheduler, block
manager, sampler, detokenizer) runs each one, around a model-free runner."""

from __future__ import annotations

import queue

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laneway_proto import worker_pb2 as pb
from tests.workers.engine.gated_engine import VOCAB_SIZE, make_gated_engine
from workers.engine.engine_loop import EngineLoop
from workers.engine.outputs import RequestOutput
from workers.engine.request_error import InvalidRequest
from workers.wire import ModelLimits, to_sequence

MAX_MODEL_LEN = 64
EOS = 257
floats = st.one_of(st.floats(width=32), st.sampled_from([0.0, 1e-30, 1e-45, 0.5, 1.0, 2.0]))
ids = st.lists(st.integers(-3, VOCAB_SIZE + 3), max_size=70)


@st.composite
def requests(draw: st.DrawFn) -> pb.GenerateRequest:
    sampling = pb.SamplingParams(
        max_tokens=draw(st.integers(-2, 80)), temperature=draw(floats), top_p=draw(floats),
        top_k=draw(st.integers(-3, 100_000)), stop=draw(st.lists(st.text(max_size=4), max_size=3)),
        stop_token_ids=draw(st.lists(st.integers(-3, VOCAB_SIZE + 3), max_size=3)), ignore_eos=draw(st.booleans()))
    if (seed := draw(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)))) is not None:
        sampling.seed = seed
    if (logprobs := draw(st.one_of(st.none(), st.integers(-2, 30)))) is not None:
        sampling.logprobs = logprobs
    req = pb.GenerateRequest(
        sampling=sampling, deadline_unix_ms=draw(st.integers(-2**63, 2**63 - 1)),
        lane=pb.LaneInfo(name=draw(st.text(max_size=8)), priority=draw(st.integers(-2**31, 2**31 - 1)),
                         preemptible=draw(st.booleans()), max_seq_share=draw(floats), max_kv_share=draw(floats),
                         min_share=draw(floats)),
        targets=pb.LatencyTargets(ttft_ms=draw(st.floats()), tbt_ms=draw(st.floats())),
        resume_token_ids=draw(st.lists(st.integers(-3, VOCAB_SIZE + 3), max_size=6)))
    which = draw(st.sampled_from(["token_ids", "text", "chat", "none"]))
    if which == "token_ids":
        req.token_ids.ids.extend(draw(ids))
    elif which == "text":
        req.text = draw(st.text(max_size=70))
    elif which == "chat":
        for role, content in draw(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=20)), max_size=3)):
            req.chat.messages.add(role=role, content=content)
    return req


@pytest.fixture(scope="module")
def served() -> EngineLoop:
    engine, runner = make_gated_engine(num_blocks=24, block_size=4, max_model_len=MAX_MODEL_LEN)
    runner.gate.set()
    loop = EngineLoop(engine)
    loop.start()
    yield loop
    loop.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=requests())
def test_any_request_is_refused_at_the_wire_or_served_to_the_end(served: EngineLoop, req: pb.GenerateRequest) -> None:
    engine = served.engine
    limits = ModelLimits(max_model_len=MAX_MODEL_LEN, vocab_size=VOCAB_SIZE, eos_token_ids=(EOS,))
    try:
        seq = to_sequence(req, engine.tokenizer, limits)
        engine.scheduler.check_admissible(seq)  # what the servicer checks before the engine sees it
    except InvalidRequest:
        return
    outputs: queue.SimpleQueue[RequestOutput] = queue.SimpleQueue()
    seq.on_output = outputs.put
    served.add(seq)
    while not (out := outputs.get(timeout=60)).is_finished:
        assert out.error is None
    assert out.error is None, f"the engine failed on {req}"  # refused on the engine thread is fine
    assert served.fatal_error is None
