"""Intake of structured outputs and tools: the job's constraint and tool plan, the wire request,
and a 400 naming the field for everything refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import APIError
from gateway.intake import job_from_body
from gateway.job import Job
from gateway.model_catalog import ModelCatalog
from gateway.tools.output import rewrite_message
from gateway.wire import to_request
from lanes.policy_load import load_policy

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
MESSAGES = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather now", "strict": True,
                                            "parameters": {"type": "object", "additionalProperties": False,
                                                           "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time"}}


class _NoWorkers:
    workers: list = []


def _job(**body) -> Job:
    return job_from_body(POLICY, ModelCatalog(_NoWorkers()), "chat", "chat", "anonymous",
                         {"messages": MESSAGES, **body}, {})


def _refused(**body) -> APIError:
    with pytest.raises(APIError) as info:
        _job(**body)
    assert info.value.status == 400
    return info.value


def test_response_format_json_schema_becomes_a_strict_constraint_on_the_wire() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    job = _job(response_format={"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": True}})
    req = to_request(job)
    assert json.loads(req.constraint.json_schema) == schema and not req.constraint.lenient
    loose = _job(response_format={"type": "json_schema", "json_schema": {"name": "A", "schema": schema}})
    assert to_request(loose).constraint.lenient
    assert to_request(_job(response_format={"type": "json_object"})).constraint.json_object
    assert not to_request(_job(response_format={"type": "text"})).HasField("constraint")


@pytest.mark.parametrize(("extra", "kind"), [
    ({"json": {"type": "object"}}, "json_schema"), ({"json": '{"type": "object"}'}, "json_schema"),
    ({"regex": "[0-9]+"}, "regex"), ({"choice": ["a", "b"]}, "choice"), ({"grammar": 'root ::= "x"'}, "grammar"),
    ({"json_object": True}, "json_object"),
])
def test_vllm_structured_outputs(extra: dict, kind: str) -> None:
    assert to_request(_job(structured_outputs=extra)).constraint.WhichOneof("kind") == kind


@pytest.mark.parametrize(("body", "param"), [
    ({"structured_outputs": {"regex": "a", "choice": ["b"]}}, "structured_outputs"),
    ({"structured_outputs": {}}, "structured_outputs"),
    ({"structured_outputs": {"whitespace_pattern": " "}}, "structured_outputs.whitespace_pattern"),
    ({"structured_outputs": {"regex": "a", "structural_tag": "x"}}, "structured_outputs.structural_tag"),
    ({"guided_json": {"type": "object"}}, "guided_json"),
    ({"guided_regex": "a"}, "guided_regex"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"response_format": {"type": "grammar"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "A"}}},
     "response_format.json_schema.json_schema.schema"),
    ({"response_format": {"type": "json_object"}, "structured_outputs": {"regex": "a"}}, "structured_outputs"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0.type"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parametrs": {}}}]}, "tools.0.function.parametrs"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
     "tools.0.function.parameters"),
    ({"tools": [WEATHER, WEATHER]}, "tools"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}, "messages.0"),
])
def test_refusals_name_the_field(body: dict, param: str) -> None:
    error = _refused(**body)
    assert error.param is not None and error.param.startswith(param.split(".")[0])
    assert param.split(".")[-1] in (error.param + error.message)


def test_tool_plans_and_forced_calls() -> None:
    auto = _job(tools=[WEATHER, TIME])
    assert auto.tools is not None and auto.tools.mode == "auto" and auto.constraint is None
    assert [t.name for t in to_request(auto).chat.tools] == ["get_weather", "get_time"]

    none = _job(tools=[WEATHER], tool_choice="none")
    assert not to_request(none).chat.tools, "tool_choice none: the model is not shown the tools"

    required = _job(tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False)
    schema = json.loads(to_request(required).constraint.json_schema)
    assert schema["type"] == "array" and schema["minItems"] == 1 and schema["maxItems"] == 1
    assert [c["properties"]["name"]["const"] for c in schema["items"]["anyOf"]] == ["get_weather", "get_time"]
    assert to_request(required).constraint.lenient, "get_time is not strict"

    named = _job(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    c = to_request(named).constraint
    assert json.loads(c.json_schema) == WEATHER["function"]["parameters"] and not c.lenient


def test_tool_history_travels_to_the_worker() -> None:
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "snow"}]
    req = to_request(_job(messages=messages, tools=[WEATHER]))
    assistant, tool = req.chat.messages[1], req.chat.messages[2]
    assert (assistant.content, [(c.id, c.name, c.arguments) for c in assistant.tool_calls]) == (
        "", [("call_1", "get_weather", '{"city": "Oslo"}')])
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "call_1", "snow")


def test_whole_answers_are_rewritten_into_tool_calls() -> None:
    auto = _job(tools=[WEATHER]).tools
    assert auto is not None
    choice = {"message": {"role": "assistant", "content": 'Checking.\n<tool_call>\n{"name": "get_weather", '
                                                          '"arguments": {"city": "Oslo"}}\n</tool_call>'},
              "finish_reason": "stop"}
    rewrite_message(auto, choice)
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Checking."
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}

    named = _job(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}).tools
    assert named is not None
    choice = {"message": {"role": "assistant", "content": '{"city": "Rome"}'}, "finish_reason": "stop"}
    rewrite_message(named, choice)
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Rome"}'}

    plain = {"message": {"role": "assistant", "content": "No tools needed."}, "finish_reason": "stop"}
    rewrite_message(auto, plain)
    assert plain == {"message": {"role": "assistant", "content": "No tools needed."}, "finish_reason": "stop"}


def test_completions_take_structured_outputs_too() -> None:
    job = job_from_body(POLICY, ModelCatalog(_NoWorkers()), "completion", "chat", "anonymous",
                        {"prompt": "Answer: ", "structured_outputs": {"choice": ["yes", "no"]}}, {})
    assert list(to_request(job).constraint.choice.choices) == ["yes", "no"]
    assert job.tools is None
