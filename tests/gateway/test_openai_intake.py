"""OpenAI bodies to Jobs: what is served, what is refused by name, what no field may do silently."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.errors import APIError
from gateway.intake import job_from_body
from gateway.job import Job, PromptList
from gateway.model_catalog import ModelCatalog
from gateway.schemas import UNSUPPORTED
from tests.lanes.factories import make_policy


@dataclass
class _Roster:
    workers: list = field(default_factory=list)


def _job(body: dict, kind: str = "completion", endpoint: str = "chat") -> Job:
    return job_from_body(make_policy(), ModelCatalog(_Roster()), kind, endpoint, "acme", body, {})


def _refusal(body: dict, kind: str = "completion", endpoint: str = "chat") -> APIError:
    with pytest.raises(APIError) as info:
        _job(body, kind, endpoint)
    assert info.value.status == 400, info.value.message
    return info.value


def test_sampling_options_reach_the_job() -> None:
    job = _job({"prompt": "hi", "n": 3, "presence_penalty": 0.5, "frequency_penalty": -1, "repetition_penalty": 1.2,
                "logit_bias": {"10": 5, "2": -100}, "min_tokens": 2, "max_tokens": 8, "seed": 7})
    s = job.sampling
    assert (s.n, s.presence_penalty, s.frequency_penalty, s.repetition_penalty) == (3, 0.5, -1.0, 1.2)
    assert s.logit_bias == ((2, -100.0), (10, 5.0)) and s.min_tokens == 2
    assert job.num_choices == 3 and job.max_total_tokens == job.prompt_tokens_estimate + 3 * 8


def test_a_list_of_prompts_is_one_job_with_one_choice_each() -> None:
    job = _job({"prompt": ["ab", "cde"], "n": 2})
    assert job.prompt == PromptList(("ab", "cde")) and job.num_choices == 4
    assert job.prompt_tokens_estimate > 0
    tokens = _job({"prompt": [[1, 2], [3]]})
    assert tokens.prompt == PromptList(((1, 2), (3,)))
    assert _job({"prompt": [5, 6]}).prompt == [5, 6], "a flat list is one prompt of token ids"


def test_echo_with_logprobs_asks_for_prompt_logprobs() -> None:
    assert _job({"prompt": "x", "echo": True, "logprobs": 2}).sampling.prompt_logprobs == 2
    echo_only = _job({"prompt": "x", "echo": True}).sampling
    assert echo_only.echo and echo_only.prompt_logprobs is None
    assert _job({"prompt": "x", "logprobs": 2}).sampling.prompt_logprobs is None


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"prompt": "x", "suffix": "y"}, "suffix", "value_error"),
    ({"prompt": "x", "best_of": 3}, "best_of", "best_of_not_supported"),
    ({"prompt": "x", "best_of": 2, "n": 3}, "best_of", "best_of_not_supported"),
    ({"prompt": "x", "min_tokens": 20, "max_tokens": 10}, "min_tokens", "min_tokens_over_max_tokens"),
    ({"prompt": "x", "min_tokens": 20}, "min_tokens", "min_tokens_over_max_tokens"),  # the default is 16
    ({"prompt": ["a"] * 65, "n": 2}, "n", "too_many_choices"),
    ({"prompt": "x", "whatever": 1}, "whatever", "unknown_parameter"),
    ({"prompt": "x", "logit_bias": {"abc": 1}}, "logit_bias.abc", "string_pattern_mismatch"),
    ({"prompt": "x", "logit_bias": {"1": 101}}, "logit_bias.1", "less_than_equal"),
    ({"prompt": "x", "presence_penalty": 3}, "presence_penalty", "less_than_equal"),
    ({"prompt": "x", "repetition_penalty": 0}, "repetition_penalty", "greater_than"),
    ({"prompt": "x\ud800"}, "prompt", "invalid_text"),
    ({"prompt": ""}, "prompt", "string_too_short"),
])
def test_refusals_name_the_field(body: dict, param: str, code: str) -> None:
    err = _refusal(body)
    assert (err.param, err.code) == (param, code), err.message


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_openai_fields_are_refused_by_name(name: str) -> None:
    err = _refusal({"messages": [{"role": "user", "content": "hi"}], name: None}, kind="chat")
    assert err.param == name and err.code == "unsupported_parameter" and "not supported" in err.message


def test_best_of_equal_to_n_is_served_as_n() -> None:
    assert _job({"prompt": "x", "best_of": 2, "n": 2}).num_choices == 2


def test_fields_with_no_effect_on_the_output_are_accepted() -> None:
    job = _job({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "user": "u1",
                "metadata": {"k": "v"}, "store": False, "stream_options": {"include_usage": True}, "stream": True},
               kind="chat")
    assert job.prompt == [{"role": "user", "content": "hi"}] and job.stream_usage


def test_structured_outputs_and_tools_reach_the_job_never_ignored() -> None:
    # A client asking for JSON or a tool call must not silently get free text: the job carries
    # the grammar (or the tool plan) that the worker enforces.
    fmt = _job({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}},
               kind="chat")
    assert fmt.constraint is not None and fmt.constraint.kind == "json_object"
    tools = _job({"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required", "parallel_tool_calls": False}, kind="chat")
    assert tools.tools is not None and tools.uses_tools and tools.constraint is not None


def test_legacy_function_fields_are_refused_with_what_to_send_instead() -> None:
    for name, instead in [("functions", "tools"), ("function_call", "tool_choice")]:
        err = _refusal({"messages": [{"role": "user", "content": "hi"}], name: []}, kind="chat")
        assert err.param == name and instead in err.message


def test_non_text_content_parts_are_refused_by_the_schema() -> None:
    err = _refusal({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
                   kind="chat")
    assert err.param is not None and err.param.startswith("messages.0.content")
