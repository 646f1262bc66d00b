"""The official openai SDK, sync and async, against a real gateway and a random-weight worker:
structured outputs parse and tool calls come back, because the grammar forces them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import openai
import pytest
from pydantic import BaseModel

pytestmark = pytest.mark.integration
KEY = "sk-demo-local"  # the default policy's demo tenant
MODEL = "laneway"  # always accepted as the model name


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


class Weather(BaseModel):
    city: str
    unit: str


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city", "strict": True,
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "days"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0, timeout=120) as c:
        yield c


def _async(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0, timeout=120)


def _check_weather_call(call) -> None:
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) == {"city", "days"} and isinstance(args["days"], int)


def test_parse_returns_the_pydantic_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "A person, please."}], response_format=Person,
        max_tokens=200, temperature=1.0, seed=1)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Person)
    assert completion.usage is not None and completion.usage.completion_tokens <= 200


def test_parse_async_and_the_streaming_helper(gateway: str) -> None:
    async def main() -> None:
        async with _async(gateway) as client:  # closed here: an unclosed transport warns, and warnings fail tests
            completion = await client.chat.completions.parse(
                model=MODEL, messages=[{"role": "user", "content": "Weather?"}], response_format=Weather,
                max_tokens=120)
            assert isinstance(completion.choices[0].message.parsed, Weather)
            async with client.chat.completions.stream(model=MODEL, messages=ASK, response_format=Person,
                                                      max_tokens=150) as stream:
                async for _ in stream:
                    pass
                final = await stream.get_final_completion()
        assert isinstance(final.choices[0].message.parsed, Person)

    anyio.run(main)


def test_json_object_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}, max_tokens=80)
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_tool_choice_required_returns_tool_calls(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="required", max_tokens=150)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        if call.function.name == "get_weather":
            _check_weather_call(call)
        else:
            assert call.function.name == "get_time" and isinstance(json.loads(call.function.arguments), dict)


def test_named_tool_choice_async(gateway: str) -> None:
    async def main() -> None:
        async with _async(gateway) as client:
            completion = await client.chat.completions.create(
                model=MODEL, messages=ASK, tools=[WEATHER_TOOL, TIME_TOOL], max_tokens=150,
                tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False)
        choice = completion.choices[0]
        assert choice.finish_reason == "stop"  # as OpenAI reports a forced named call
        [call] = choice.message.tool_calls or []
        _check_weather_call(call)

    anyio.run(main)


def test_tool_calls_stream_as_openai_streams_them(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False,
        max_tokens=150, stream=True)
    events = [e for e in stream if e.choices]
    assert events[0].choices[0].delta.role == "assistant"
    deltas = [tc for e in events for tc in (e.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].id and deltas[0].function.name == "get_weather"
    # Arguments follow the name in later deltas. How many fragments depends on the engine's speed
    # against the streaming lane's pacing (tokens made within 25 ms share a message), so a fast
    # machine may send them in a couple; tests/gateway/tools/test_parser.py counts fragments.
    assert all(d.id is None for d in deltas[1:]) and len(deltas) >= 2, "arguments follow the name"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert set(json.loads(arguments)) == {"city", "days"}
    assert events[-1].choices[0].finish_reason == "tool_calls"


def test_parse_with_a_pydantic_function_tool(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(Weather)], tool_choice="required",
        max_tokens=150)
    [call, *_] = completion.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Weather)


def test_tool_history_and_auto_choice_are_accepted(client: openai.OpenAI) -> None:
    messages = [*ASK,
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 1}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Snow, -3 C"}]
    completion = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                                        max_tokens=16, temperature=0)
    choice = completion.choices[0]
    # A random-weight model writes no call in auto mode: plain content, an ordinary finish.
    assert choice.finish_reason in ("stop", "length") and choice.message.tool_calls is None


def test_unsupported_options_are_400s_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8,
                                       extra_body={"structured_outputs": {"regex": "a+", "whitespace_pattern": " "}})
    assert "whitespace_pattern" in str(info.value)
    with pytest.raises(openai.BadRequestError, match="JSON schema") as bad_schema:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {"type": "objectx"}}})
    assert bad_schema.value.code == "invalid_constraint"


def test_every_choice_of_n_keeps_its_own_grammar(client: openai.OpenAI) -> None:
    # n samples share the prompt's KV blocks but each walks the grammar on its own.
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "People, please."}], response_format=Person,
        max_tokens=200, temperature=1.0, seed=3, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    people = [c.message.parsed for c in completion.choices]
    assert all(isinstance(p, Person) for p in people)
    assert len({p.model_dump_json() for p in people if p is not None}) > 1, "seeded samples differ"


def test_tool_calls_of_n_choices_stream_under_their_own_index(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False,
        max_tokens=150, stream=True, n=2, temperature=1.0, seed=5)
    arguments: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str | None] = {}
    for event in stream:
        for choice in event.choices:
            for tc in choice.delta.tool_calls or []:
                arguments[choice.index] += tc.function.arguments or "" if tc.function else ""
            if choice.finish_reason is not None:
                finish[choice.index] = choice.finish_reason
    assert finish == {0: "tool_calls", 1: "tool_calls"}
    for text in arguments.values():
        assert set(json.loads(text)) == {"city", "days"}
