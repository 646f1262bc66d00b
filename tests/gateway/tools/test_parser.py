"""Tool-call parsing on recorded model outputs (Hermes / Qwen2 and Llama 3 JSON), streamed in
pieces of any size: the same calls and the same content whatever the chunking."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tools.output import whole_tool_calls
from gateway.tools.parser import ToolCallParser

TOOLS = frozenset({"get_current_weather", "get_time", "search_web"})

# Recorded in the formats the models are trained on (Hermes 2 Pro / Qwen2.5 chat templates;
# Llama 3.1 / 3.2 JSON tool calling).
HERMES_ONE = ('<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "San Francisco, CA", '
              '"unit": "fahrenheit"}}\n</tool_call>')
HERMES_TWO_WITH_PREAMBLE = (
    "I'll look up both cities for you.\n\n"
    '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}\n'
    "</tool_call>\n"
    '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Tokyo, Japan", "unit": "celsius"}}\n'
    "</tool_call>")
HERMES_NESTED_AND_ESCAPED = (
    '<tool_call>\n{"name": "search_web", "arguments": {"query": "say \\"hi\\" in {braces} and </tool_call>", '
    '"filters": {"site": ["a.org", "b.org"], "recent": true}, "k": 3}}\n</tool_call>')
LLAMA3_ONE = '{"name": "get_current_weather", "parameters": {"location": "Boston, MA", "unit": "celsius"}}'
LLAMA3_TWO = ('{"name": "get_time", "parameters": {"timezone": "Europe/Berlin"}}; '
              '{"name": "search_web", "parameters": {"query": "Berlin events"}}')
FORCED_ARRAY = '[{"name": "get_time", "arguments": {"timezone": "UTC"}}, {"name": "search_web", "arguments": {}}]'


def _parse(text: str, cuts: list[int] | None = None, parallel: bool = True):
    ids = (f"call_{i}" for i in itertools.count())
    parser = ToolCallParser(TOOLS, parallel, make_id=lambda: next(ids))
    bounds = sorted({0, len(text), *(c for c in (cuts or []) if 0 < c < len(text))})
    content, deltas = "", []
    for a, b in itertools.pairwise(bounds):
        d = parser.feed(text[a:b])
        content += d.content
        deltas += d.tool_calls
    d = parser.finish()
    content += d.content
    deltas += d.tool_calls
    calls = [(c["function"]["name"], _json_or_text(c["function"]["arguments"])) for c in whole_tool_calls(deltas)]
    return content, calls, deltas


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.mark.parametrize(("text", "content", "calls"), [
    (HERMES_ONE, "", [("get_current_weather", {"location": "San Francisco, CA", "unit": "fahrenheit"})]),
    (HERMES_TWO_WITH_PREAMBLE, "I'll look up both cities for you.",
     [("get_current_weather", {"location": "Paris, France", "unit": "celsius"}),
      ("get_current_weather", {"location": "Tokyo, Japan", "unit": "celsius"})]),
    (HERMES_NESTED_AND_ESCAPED, "",
     [("search_web", {"query": 'say "hi" in {braces} and </tool_call>',
                      "filters": {"site": ["a.org", "b.org"], "recent": True}, "k": 3})]),
    (LLAMA3_ONE, "", [("get_current_weather", {"location": "Boston, MA", "unit": "celsius"})]),
    (LLAMA3_TWO, "", [("get_time", {"timezone": "Europe/Berlin"}), ("search_web", {"query": "Berlin events"})]),
    (FORCED_ARRAY, "", [("get_time", {"timezone": "UTC"}), ("search_web", {})]),
])
def test_recorded_outputs(text: str, content: str, calls: list) -> None:
    got_content, got_calls, _ = _parse(text)
    assert (got_content, got_calls) == (content, calls)


@pytest.mark.parametrize("text", [
    "The weather in Paris is sunny, 21°C.",
    '{"answer": 42, "unit": "none"}',  # JSON, but not a call
    '<tool_call>\n{"name": "launch_rockets", "arguments": {}}\n</tool_call>',  # not one of the tools
    "<tool_call>\n{this is not json}\n</tool_call> sorry",
    "Use <tool> tags like <tool_cal and <b>bold</b>.",
    "[1, 2, 3]",
    "   ",
])
def test_text_that_is_not_a_call_comes_back_unchanged(text: str) -> None:
    assert _parse(text)[:2] == (text, [])


@settings(max_examples=150, deadline=None)
@given(text=st.sampled_from([HERMES_ONE, HERMES_TWO_WITH_PREAMBLE, HERMES_NESTED_AND_ESCAPED, LLAMA3_ONE,
                             LLAMA3_TWO, FORCED_ARRAY, "plain <tool_call text", '{"answer": 1}']),
       cuts=st.lists(st.integers(0, 400), max_size=30))
def test_any_chunking_gives_the_same_result(text: str, cuts: list[int]) -> None:
    assert _parse(text, cuts)[:2] == _parse(text)[:2]


def test_a_call_is_announced_once_with_id_and_name_then_arguments_stream() -> None:
    _, _, deltas = _parse(LLAMA3_ONE, cuts=list(range(len(LLAMA3_ONE))))
    first = deltas[0]
    assert (first.index, first.id, first.name, first.arguments) == (0, "call_0", "get_current_weather", "")
    assert all(d.id is None and d.name is None for d in deltas[1:])
    assert len(deltas) > 10, "arguments arrive in many fragments, as the model writes them"
    assert "".join(d.arguments for d in deltas) == '{"location": "Boston, MA", "unit": "celsius"}'


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    assert _parse(HERMES_TWO_WITH_PREAMBLE, parallel=False)[1] == [
        ("get_current_weather", {"location": "Paris, France", "unit": "celsius"})]


def test_a_call_cut_off_by_max_tokens_keeps_what_arrived() -> None:
    content, _, deltas = _parse('<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Eur')
    assert content == ""
    assert [c["function"] for c in whole_tool_calls(deltas)] == [{"name": "get_time", "arguments": '{"timezone": "Eur'}]


def test_arguments_written_as_a_json_string_are_unquoted() -> None:
    text = '<tool_call>\n{"name": "get_time", "arguments": "{\\"timezone\\": \\"UTC\\"}"}\n</tool_call>'
    assert _parse(text)[1] == [("get_time", {"timezone": "UTC"})]
