"""A stream resumed on another worker (GenerateRequest.resume_token_ids) continues exactly as
the first worker would have: same tokens for greedy and seeded requests, same text, stop
strings that straddle the hand-over still stop it, and max_tokens counts the whole stream.
Each "worker" is a fresh engine; requests go through the wire module as the servicer's do."""

from __future__ import annotations

import pytest

from laneway_proto import worker_pb2 as pb
from tests.workers.engine.engine_factory import make_engine
from tests.workers.engine.gated_engine import VOCAB_SIZE, make_gated_engine
from workers.engine.engine import Engine, drain
from workers.engine.outputs import RequestOutput
from workers.engine.request_error import InvalidRequest
from workers.wire import ModelLimits, to_sequence

PROMPT = [5, 17, 33, 2, 90, 61, 7]
NUM_TOKENS = 12
EOS = 257


def _request(request_id: str, resumed: list[int] = (), *, temperature: float = 0.0, seed: int | None = None,
             stop: tuple[str, ...] = (), max_tokens: int = NUM_TOKENS) -> pb.GenerateRequest:
    sampling = pb.SamplingParams(max_tokens=max_tokens, temperature=temperature, ignore_eos=True, stop=list(stop))
    if seed is not None:
        sampling.seed = seed
    return pb.GenerateRequest(request_id=request_id, token_ids=pb.TokenIds(ids=PROMPT), sampling=sampling,
                              resume_token_ids=list(resumed))


def _run(engine: Engine, req: pb.GenerateRequest, max_model_len: int = 256) -> list[RequestOutput]:
    limits = ModelLimits(max_model_len=max_model_len, vocab_size=VOCAB_SIZE, eos_token_ids=(EOS,))
    seq = to_sequence(req, engine.tokenizer, limits)
    return drain(engine, [seq])[seq.seq_id]


def _tokens(outs: list[RequestOutput]) -> list[int]:
    return [t for o in outs for t in o.token_ids]


@pytest.mark.parametrize(("temperature", "seed"), [(0.0, None), (1.0, 1234)], ids=["greedy", "seeded"])
@pytest.mark.parametrize("num_sent", [1, 5, NUM_TOKENS - 1])
def test_a_resumed_stream_continues_with_the_tokens_the_first_worker_would_have_sent(
        temperature: float, seed: int | None, num_sent: int) -> None:
    whole = _run(make_engine("tiny"), _request("r", temperature=temperature, seed=seed))
    reference = _tokens(whole)
    assert len(reference) == NUM_TOKENS

    # Another worker, cold: it prefills prompt + sent tokens and samples what follows.
    engine = make_engine("tiny")
    rest = _run(engine, _request("r", reference[:num_sent], temperature=temperature, seed=seed))
    assert _tokens(rest) == reference[num_sent:]
    assert rest[-1].finish_reason == "length"
    usage = rest[-1].usage
    assert usage is not None and usage.prompt_tokens == len(PROMPT) and usage.completion_tokens == NUM_TOKENS
    assert engine.runner.stats.num_sampled == NUM_TOKENS - num_sent  # the sent tokens were prefilled, not sampled


def test_text_and_a_stop_string_across_the_hand_over_come_out_as_from_one_worker() -> None:
    # The gated engine's model picks lowercase letters only, so a seeded stream is readable text.
    engine, runner = make_gated_engine(max_model_len=256)
    runner.gate.set()
    letters = _run(engine, _request("r", temperature=1.0, seed=99, max_tokens=40), max_model_len=256)
    text = "".join(o.text for o in letters)
    assert len(text) == 40
    stop = text[20:24]  # stop strings that begin before the hand-over and end after it
    cut = text.find(stop)  # the first occurrence ends the stream (it may be earlier)

    def run(resumed: list[int]) -> list[RequestOutput]:
        engine, runner = make_gated_engine(max_model_len=256)
        runner.gate.set()
        return _run(engine, _request("r", resumed, temperature=1.0, seed=99, stop=(stop,), max_tokens=40),
                    max_model_len=256)

    whole = run([])
    assert "".join(o.text for o in whole) == text[:cut] and whole[-1].finish_reason == "stop"
    streamed = _tokens(whole)
    for num_sent in range(1, len(streamed) - 1):
        first = [o for o in whole if o.token_ids][:num_sent]  # one token per output: what was sent
        rest = run(streamed[:num_sent])
        assert "".join(o.text for o in first + rest) == text[:cut], f"hand-over after {num_sent} tokens"
        assert _tokens(rest) == streamed[num_sent:] and rest[-1].finish_reason == "stop"


@pytest.mark.parametrize(
    ("resumed", "changes", "needle"),
    [
        ([3, VOCAB_SIZE], {}, f"resume token id {VOCAB_SIZE} is outside the vocabulary"),
        ([3, -1], {}, "resume token id -1 is outside the vocabulary"),
        ([3] * NUM_TOKENS, {}, "leave nothing to generate under max_tokens=12"),
        ([3, EOS, 4], {"ignore_eos": False}, "resume token 1 (id 257) is an end-of-sequence or stop token"),
        ([3, 4, 9], {"stop_token_ids": [9]}, "resume token 2 (id 9) is an end-of-sequence or stop token"),
    ],
)
def test_resume_tokens_a_live_stream_could_not_have_sent_are_refused(
        resumed: list[int], changes: dict[str, object], needle: str) -> None:
    req = _request("r", resumed)
    for name, value in changes.items():
        if isinstance(value, list):
            getattr(req.sampling, name).extend(value)
        else:
            setattr(req.sampling, name, value)
    limits = ModelLimits(max_model_len=256, vocab_size=VOCAB_SIZE, eos_token_ids=(EOS,))
    with pytest.raises(InvalidRequest) as info:
        to_sequence(req, make_gated_engine()[0].tokenizer, limits)
    assert needle in str(info.value)


def test_resume_tokens_that_already_complete_a_stop_string_are_refused_by_the_engine() -> None:
    engine, _runner = make_gated_engine()
    abc = [ord(c) for c in "abc"]  # the byte tokenizer: id = byte
    limits = ModelLimits(max_model_len=128, vocab_size=VOCAB_SIZE, eos_token_ids=(EOS,))
    seq = to_sequence(_request("r", abc, stop=("bc",)), engine.tokenizer, limits)
    with pytest.raises(InvalidRequest, match="resume tokens complete a stop string at token 2"):
        engine.add(seq)
    assert not engine.has_work()
