"""Gateway jobs to gRPC requests: a malformed job is refused explicitly, not by an assert."""

from __future__ import annotations

import pytest

from gateway.job import Job, LaneTicket, Sampling
from gateway.wire import to_request


def _job(kind: str, prompt) -> Job:
    return Job(endpoint="chat", tenant="anonymous", kind=kind, prompt=prompt,  # type: ignore[arg-type]
               sampling=Sampling(max_tokens=4), lane=LaneTicket("interactive", 0, False), stream=False,
               prompt_tokens_estimate=1)


def test_chat_messages_become_a_chat_prompt() -> None:
    req = to_request(_job("chat", [{"role": "user", "content": "hi"}]))
    assert [(m.role, m.content) for m in req.chat.messages] == [("user", "hi")]


def test_a_chat_job_whose_prompt_is_not_messages_is_refused() -> None:
    with pytest.raises(TypeError, match="a chat job's prompt is a list of messages"):
        to_request(_job("chat", "just text"))


def test_defaults_are_flagged_on_the_wire() -> None:
    job = _job("completion", "hi")
    job.sampling = Sampling(max_tokens=16, max_tokens_is_default=True, top_p_is_default=True)
    sp = to_request(job).sampling
    assert (sp.max_tokens, sp.max_tokens_is_default, sp.top_p_is_default) == (16, True, True)
    assert not sp.temperature_is_default and not sp.top_k_is_default
    assert not to_request(_job("completion", "hi")).sampling.max_tokens_is_default
