"""Request-shaped types refuse bad input with InvalidRequest, never an assert (asserts vanish
under -O, and one on the engine thread fails every request)."""

from __future__ import annotations

import pytest

from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import MAX_LOGPROBS, LanePolicy, SamplingParams, Sequence

NAN = float("nan")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"max_tokens": 0}, "max_tokens must be at least 1, got 0"),
        ({"temperature": -0.1}, "temperature must be in [0, 2]"),
        ({"temperature": 2.5}, "temperature must be in [0, 2]"),
        ({"temperature": NAN}, "temperature"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": NAN}, "top_p"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"logprobs": -1}, "logprobs must be in [0, 20]"),
        ({"logprobs": MAX_LOGPROBS + 1}, "logprobs"),
        ({"stop": ("end", "")}, "stop strings must be non-empty"),
    ],
)
def test_sampling_params_refuse_bad_values(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        SamplingParams(**fields)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_sampling_params_accept_the_edges() -> None:
    params = SamplingParams(max_tokens=1, temperature=2.0, top_p=1.0, top_k=0, logprobs=MAX_LOGPROBS, stop=("x",))
    assert params.logprobs == MAX_LOGPROBS and not params.is_greedy
    assert SamplingParams(temperature=0.0, logprobs=0).is_greedy


@pytest.mark.parametrize("field_name", ["max_seq_share", "max_kv_share"])
@pytest.mark.parametrize("share", [0.0, -0.5, 1.5, NAN])
def test_lane_policy_refuses_shares_outside_0_1(field_name: str, share: float) -> None:
    with pytest.raises(InvalidRequest, match=f"lane bulk: {field_name} must be in"):
        LanePolicy(name="bulk", **{field_name: share})  # type: ignore[arg-type]
    assert getattr(LanePolicy(name="bulk", **{field_name: 0.25}), field_name) == 0.25  # type: ignore[arg-type]


def test_a_sequence_refuses_an_empty_prompt() -> None:
    with pytest.raises(InvalidRequest, match="req-9: prompt is empty"):
        Sequence("req-9", [])
