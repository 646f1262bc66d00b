"""gRPC requests to Sequences: context limits, defaults the model decides, eos ids, BOS."""

from __future__ import annotations

import json

import pytest

from laneway_proto import worker_pb2 as pb
from tests.workers.tokenizer.factories import write_hf_tokenizer
from workers.engine.request_error import InvalidRequest
from workers.models.generation_config import SamplingDefaults
from workers.tokenizer import ByteTokenizer, HFTokenizer
from workers.wire import ModelLimits, to_sequence, to_sequences

BYTES = ByteTokenizer(320)
LIMITS = ModelLimits(max_model_len=32, vocab_size=320, eos_token_ids=(257, 300, 301))


def _request(prompt: bytes = b"0123456789", **sampling: object) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id="r", token_ids=pb.TokenIds(ids=list(prompt)),
                              sampling=pb.SamplingParams(**{"max_tokens": 4, **sampling}))


def test_a_default_max_tokens_is_clamped_to_the_context_left() -> None:
    seq = to_sequence(_request(max_tokens=256, max_tokens_is_default=True), BYTES, LIMITS)
    assert seq.sampling.max_tokens == 32 - 10
    assert to_sequence(_request(max_tokens=5, max_tokens_is_default=True), BYTES, LIMITS).sampling.max_tokens == 5


def test_a_clients_max_tokens_that_does_not_fit_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="max_tokens=23 plus the prompt's 10 tokens exceeds .* 32"):
        to_sequence(_request(max_tokens=23), BYTES, LIMITS)
    assert to_sequence(_request(max_tokens=22), BYTES, LIMITS).sampling.max_tokens == 22


def test_a_prompt_that_fills_the_context_is_refused_even_with_a_default_max_tokens() -> None:
    with pytest.raises(InvalidRequest, match="prompt has 32 tokens"):
        to_sequence(_request(prompt=b"x" * 32, max_tokens=16, max_tokens_is_default=True), BYTES, LIMITS)


def test_the_models_sampling_defaults_replace_only_defaults() -> None:
    limits = ModelLimits(32, 320, (257,), SamplingDefaults(temperature=0.6, top_p=0.9, top_k=20))
    defaulted = to_sequence(_request(temperature=1.0, top_p=1.0, temperature_is_default=True, top_p_is_default=True,
                                     top_k_is_default=True), BYTES, limits).sampling
    assert (defaulted.temperature, defaulted.top_p, defaulted.top_k) == (0.6, 0.9, 20)
    chosen = to_sequence(_request(temperature=0.0, top_p=0.5, top_k=0), BYTES, limits).sampling
    assert (chosen.temperature, chosen.top_p, chosen.top_k) == (0.0, 0.5, 0)
    # A model without defaults leaves OpenAI's, as the gateway sent them.
    plain = to_sequence(_request(temperature=1.0, temperature_is_default=True), BYTES, LIMITS).sampling
    assert (plain.temperature, plain.top_p, plain.top_k) == (1.0, 1.0, 0)


def test_every_eos_id_stops_unless_eos_is_ignored() -> None:
    seq = to_sequence(_request(stop_token_ids=[5]), BYTES, LIMITS)
    assert seq.eos_token_id == 257 and seq.sampling.stop_token_ids == (5, 300, 301)
    assert to_sequence(_request(ignore_eos=True), BYTES, LIMITS).sampling.stop_token_ids == ()


@pytest.mark.parametrize(("bos_token", "template", "starts_with_bos"), [
    ("<s>", "{% for m in messages %}{{ m.content }}{% endfor %}", True),  # template without BOS: added
    ("<s>", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", True),  # rendered once
    (None, "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", False),  # Qwen2: none at all
])
def test_chat_prompt_bos_follows_the_tokenizer(tmp_path, bos_token: str | None, template: str,
                                               starts_with_bos: bool) -> None:
    path = write_hf_tokenizer(tmp_path, chat_template=template)
    config = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "bos_token": bos_token}))
    tok = HFTokenizer.from_dir(path)
    chat = pb.ChatPrompt(messages=[pb.ChatMessage(role="user", content="hello")])
    req = pb.GenerateRequest(request_id="c", chat=chat,
                             sampling=pb.SamplingParams(max_tokens=2))
    ids = to_sequence(req, tok, ModelLimits(64, 300, (2,))).token_ids
    assert ids.count(1) == (1 if starts_with_bos else 0) and (ids[0] == 1) == starts_with_bos
    assert tok.decode(ids) == "hello"


def test_resume_tokens_are_refused_for_a_request_of_several_choices() -> None:
    req = _request(max_tokens=8)
    req.n = 2
    req.resume_token_ids.extend([65, 66])
    with pytest.raises(InvalidRequest, match="only a request of one choice can be resumed"):
        to_sequences(req, BYTES, LIMITS)


def test_a_resumed_stream_does_not_echo_its_prompt_again() -> None:
    req = _request(max_tokens=8, echo=True)
    req.resume_token_ids.extend([65, 66])
    seq = to_sequence(req, BYTES, LIMITS)
    assert not seq.sampling.echo and seq.output_token_ids == [65, 66]


def test_the_tenant_its_weight_and_the_lanes_fairness_reach_every_choice() -> None:
    req = _request()
    req.n = 2
    req.tenant, req.tenant_weight, req.lane.fair_tenants = "acme", 2.5, True
    seqs = to_sequences(req, BYTES, LIMITS)
    assert [(s.tenant, s.tenant_weight, s.lane.fair_tenants) for s in seqs] == [("acme", 2.5, True)] * 2
    plain = to_sequence(_request(), BYTES, LIMITS)
    assert (plain.tenant, plain.tenant_weight, plain.lane.fair_tenants) == ("", 1.0, False), "unset: 1 and FCFS"


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_tenant_weight_that_is_not_a_positive_number_is_refused(weight: float) -> None:
    req = _request()
    req.tenant, req.tenant_weight = "acme", weight
    with pytest.raises(InvalidRequest, match="tenant_weight must be a positive number"):
        to_sequence(req, BYTES, LIMITS)
