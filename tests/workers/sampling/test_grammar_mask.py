"""The sampler's grammar masks: only legal tokens are drawn, on the logits' own device."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workers.grammar.grammar_walk import VOCAB_SIZE, byte_compiler
from workers.engine.sequence import SamplingParams, Sequence
from workers.grammar.constraint import OutputConstraint
from workers.sampling import sample
from workers.sampling.grammar_mask import apply_grammar_masks, unpack_bitmask

COMPILER = byte_compiler()


def _seq(constraint: OutputConstraint | None, seq_id: str = "s", **sampling: object) -> Sequence:
    grammar = COMPILER.compile(constraint) if constraint is not None else None
    return Sequence(seq_id, [1, 2, 3], SamplingParams(max_tokens=200, **sampling), grammar=grammar)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(words=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=4), vocab_slack=st.integers(0, 31))
def test_unpack_bitmask_reads_bit_t_of_word_t_div_32(words: list[int], vocab_slack: int) -> None:
    vocab_size = len(words) * 32 - vocab_slack
    got = unpack_bitmask(torch.tensor([words], dtype=torch.int32), vocab_size)[0].tolist()
    assert got == [bool((words[t // 32] >> (t % 32)) & 1) for t in range(vocab_size)]


def test_grammar_rows_keep_only_legal_tokens_and_other_rows_are_untouched() -> None:
    logits = torch.randn(3, VOCAB_SIZE, generator=torch.Generator().manual_seed(0))
    seqs = [_seq(None, "free"), _seq(OutputConstraint("regex", "[xy]z"), "re"),
            _seq(OutputConstraint("json_object"), "j")]
    masked = apply_grammar_masks(logits, seqs)
    assert torch.equal(masked[0], logits[0])
    assert torch.isfinite(masked[1]).nonzero().flatten().tolist() == [ord("x"), ord("y")]
    assert torch.isfinite(masked[2]).nonzero().flatten().tolist() == [ord("{")]
    assert torch.equal(masked[1, [ord("x")]], logits[1, [ord("x")]])  # legal logits keep their values


def test_a_row_whose_model_rules_out_every_legal_token_draws_among_the_legal_ones() -> None:
    logits = torch.full((1, VOCAB_SIZE), float("-inf"))
    logits[0, ord("a")] = 0.0  # the simulated runner: letters only; the grammar wants digits
    masked = apply_grammar_masks(logits, [_seq(OutputConstraint("regex", "[0-9]"))])
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == list(range(ord("0"), ord("9") + 1))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampled_tokens_follow_the_grammar_and_logprobs_stay_the_models(temperature: float) -> None:
    seq = _seq(OutputConstraint("choice", choices=("yes", "no")), temperature=temperature, logprobs=0)
    logits = torch.randn(1, VOCAB_SIZE, generator=torch.Generator().manual_seed(3))
    result = sample(logits, [seq], torch.Generator().manual_seed(1))
    token = result.token_ids[0]
    assert token in (ord("y"), ord("n"))
    lp = result.logprobs[0]
    assert lp is not None
    assert lp[0] == pytest.approx(torch.log_softmax(logits[0], -1)[token].item(), abs=1e-5)


def test_a_closing_row_is_steered_to_the_closers_token() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string"}}, "required": ["s"],
              "additionalProperties": False}
    seq = _seq(OutputConstraint("json_schema", json.dumps(schema)))
    for byte in b'{"s": "abc':
        seq.append_token(byte)
    seq.sampling = SamplingParams(max_tokens=seq.num_output_tokens + 3)  # room for '"', '}' only
    masked = apply_grammar_masks(torch.zeros(1, VOCAB_SIZE), [seq])
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [ord('"')]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masks_apply_on_the_gpu() -> None:
    logits = torch.randn(2, VOCAB_SIZE, device="cuda")
    seqs = [_seq(OutputConstraint("regex", "[xy]z"), "a"), _seq(None, "b")]
    masked = apply_grammar_masks(logits, seqs)
    assert masked.device.type == "cuda"
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [ord("x"), ord("y")]
    assert sample(logits, seqs).token_ids[0] in (ord("x"), ord("y"))
