"""From an OpenAI body to a Job's sampling: what the client chose and what is only a default."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.errors import APIError
from gateway.intake import job_from_body
from gateway.job import Sampling
from gateway.model_catalog import ModelCatalog
from tests.lanes.factories import make_policy, with_change


@dataclass
class _Roster:
    workers: list = field(default_factory=list)


def _sampling(body: dict, endpoint: str = "chat", kind: str = "chat", policy_text: str | None = None) -> Sampling:
    policy = make_policy(policy_text) if policy_text else make_policy()
    body = {"messages": [{"role": "user", "content": "hi"}], **body} if kind == "chat" else {"prompt": "hi", **body}
    job = job_from_body(policy, ModelCatalog(_Roster()), kind, endpoint, "bots", body, {})
    return job.sampling


def test_unset_values_are_openai_defaults_marked_as_defaults() -> None:
    s = _sampling({})
    assert (s.max_tokens, s.temperature, s.top_p, s.top_k) == (256, 1.0, 1.0, 0)
    assert s.max_tokens_is_default and s.temperature_is_default and s.top_p_is_default and s.top_k_is_default


def test_client_values_are_not_defaults() -> None:
    s = _sampling({"max_tokens": 7, "temperature": 0.2, "top_p": 0.5, "top_k": 3})
    assert (s.max_tokens, s.temperature, s.top_p, s.top_k) == (7, 0.2, 0.5, 3)
    assert not (s.max_tokens_is_default or s.temperature_is_default or s.top_p_is_default or s.top_k_is_default)
    assert not _sampling({"max_completion_tokens": 9}).max_tokens_is_default
    # A client's greedy choice is a choice: the model's default temperature must not replace it.
    assert not _sampling({"temperature": 0.0}).temperature_is_default


def test_endpoint_policy_defaults_beat_the_models_but_max_tokens_stays_clampable() -> None:
    text = with_change("chat: {lane: streaming, slo: {ttft_p95_ms: 1000, tbt_p95_ms: 100}}",
                       "chat: {lane: streaming, slo: {ttft_p95_ms: 1000, tbt_p95_ms: 100}, "
                       "sampling: {max_tokens: 40, temperature: 0.3}}")
    s = _sampling({}, policy_text=text)
    assert (s.max_tokens, s.temperature) == (40, 0.3)
    assert s.max_tokens_is_default  # the client did not ask for 40: the worker may cut it to fit
    assert not s.temperature_is_default and s.top_p_is_default


def test_completion_default_is_16_and_the_endpoint_limit_still_refuses() -> None:
    s = _sampling({}, kind="completion")
    assert (s.max_tokens, s.max_tokens_is_default) == (16, True)
    with pytest.raises(APIError, match="over this endpoint's limit of 64"):
        _sampling({"max_tokens": 65}, endpoint="inline-completion", kind="completion")


def test_the_job_carries_its_tenants_weight_and_its_lanes_fairness() -> None:
    weighted = with_change("""  bots:
    keys_sha256""", """  bots:
    weight: 2.5
    keys_sha256""")
    fcfs = with_change("""    max_queue_wait_ms: 86400000
""", """    max_queue_wait_ms: 86400000
    fairness: fcfs
""", weighted)
    body = {"prompt": "hi"}
    job = job_from_body(make_policy(weighted), ModelCatalog(_Roster()), "completion", "nightly-labeling", "bots",
                        body, {})
    assert (job.tenant, job.tenant_weight, job.lane.name, job.lane.fair_tenants) == ("bots", 2.5, "bulk", True)
    job = job_from_body(make_policy(fcfs), ModelCatalog(_Roster()), "completion", "nightly-labeling", "bots", body, {})
    assert not job.lane.fair_tenants
    unknown = job_from_body(make_policy(), ModelCatalog(_Roster()), "completion", "chat", "anonymous", body, {})
    assert unknown.tenant_weight == 1.0
