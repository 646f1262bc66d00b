"""workers/wire.py for structured outputs and tools: constraints compile onto the Sequence,
tools and tool history reach the chat template, bad input is InvalidRequest."""

from __future__ import annotations

import json

import pytest

from laneway_proto import worker_pb2 as pb
from tests.workers.grammar.grammar_walk import byte_compiler
from workers.engine.request_error import InvalidRequest
from workers.tokenizer import ByteTokenizer
from workers.wire import ModelLimits, to_sequence

LIMITS = ModelLimits(max_model_len=2048, vocab_size=320, eos_token_ids=(257,))
TOKENIZER = ByteTokenizer()


def _request(**fields) -> pb.GenerateRequest:
    req = pb.GenerateRequest(request_id="r", sampling=pb.SamplingParams(max_tokens=16), **fields)
    if not req.WhichOneof("prompt"):
        req.text = "hi"
    return req


def test_a_constraint_compiles_onto_the_sequence() -> None:
    req = _request(constraint=pb.OutputConstraint(json_schema=json.dumps({"type": "object"})))
    seq = to_sequence(req, TOKENIZER, LIMITS, byte_compiler())
    assert seq.grammar is not None and not seq.grammar.is_finished
    assert to_sequence(_request(), TOKENIZER, LIMITS, byte_compiler()).grammar is None


@pytest.mark.parametrize("constraint", [
    pb.OutputConstraint(json_object=True),
    pb.OutputConstraint(regex="[a-z]+"),
    pb.OutputConstraint(grammar='start: "x"'),
    pb.OutputConstraint(choice=pb.ChoiceList(choices=["a", "b"])),
])
def test_every_kind_compiles(constraint: pb.OutputConstraint) -> None:
    assert to_sequence(_request(constraint=constraint), TOKENIZER, LIMITS, byte_compiler()).grammar is not None


def test_constraints_are_refused_without_a_grammar_engine_or_when_bad() -> None:
    req = _request(constraint=pb.OutputConstraint(json_object=True))
    with pytest.raises(InvalidRequest, match="structured outputs"):
        to_sequence(req, TOKENIZER, LIMITS, None)
    with pytest.raises(InvalidRequest, match="regex"):
        to_sequence(_request(constraint=pb.OutputConstraint(regex="(")), TOKENIZER, LIMITS, byte_compiler())


def test_tools_and_tool_history_reach_the_chat_template() -> None:
    chat = pb.ChatPrompt(
        messages=[pb.ChatMessage(role="user", content="weather in Paris?"),
                  pb.ChatMessage(role="assistant", content="", tool_calls=[
                      pb.ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')]),
                  pb.ChatMessage(role="tool", content="sunny", tool_call_id="call_1")],
        tools=[pb.ToolSpec(name="get_weather", description="Current weather",
                           parameters_json=json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}))])
    seq = to_sequence(_request(chat=chat), TOKENIZER, LIMITS)
    prompt = TOKENIZER.decode(seq.token_ids)
    assert '"name": "get_weather", "description": "Current weather"' in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert "<|tool|>\n<tool_response>\nsunny\n</tool_response>\n<|assistant|>\n" in prompt


def test_tool_parameters_that_are_not_json_are_invalid() -> None:
    chat = pb.ChatPrompt(messages=[pb.ChatMessage(role="user", content="x")],
                         tools=[pb.ToolSpec(name="f", parameters_json="{oops")])
    with pytest.raises(InvalidRequest, match="tool 'f'"):
        to_sequence(_request(chat=chat), TOKENIZER, LIMITS)


def test_a_resumed_stream_advances_its_grammar_past_the_tokens_already_sent() -> None:
    constraint = pb.OutputConstraint(choice=pb.ChoiceList(choices=["yes", "yellow"]))
    sent = TOKENIZER.encode("ye", add_special_tokens=False)
    seq = to_sequence(_request(constraint=constraint, resume_token_ids=sent), TOKENIZER, LIMITS, byte_compiler())
    assert seq.grammar is not None and not seq.grammar.is_finished
    assert seq.grammar.accept(TOKENIZER.encode("s", add_special_tokens=False)[0]), "'yes' goes on from 'ye'"
    assert seq.grammar.is_finished


def test_resume_tokens_outside_the_constraint_or_past_its_end_are_invalid() -> None:
    constraint = pb.OutputConstraint(choice=pb.ChoiceList(choices=["yes", "no"]))
    with pytest.raises(InvalidRequest, match="does not fit"):
        to_sequence(_request(constraint=constraint, resume_token_ids=TOKENIZER.encode("ya", add_special_tokens=False)),
                    TOKENIZER, LIMITS, byte_compiler())
    with pytest.raises(InvalidRequest, match="already finished"):
        to_sequence(_request(constraint=constraint, resume_token_ids=TOKENIZER.encode("no", add_special_tokens=False)),
                    TOKENIZER, LIMITS, byte_compiler())
