"""Prompt logprobs (completions' echo + logprobs) on a real tiny model.

The reference is the sampling path itself: the logits that predict prompt token j are the
last row of a forward pass over prompt[:j], computed alone for every j (slow, obviously
right). The engine gets them from chunked prefills, beside other requests, after the
prompt was cached, and after a preemption, and must agree.
"""

from __future__ import annotations

import pytest
import torch

from tests.workers.engine.engine_factory import make_engine
from tests.workers.models.runner_factories import make_runner, run_step
from workers.engine.engine import drain
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import SamplingParams, Sequence
from workers.engine.step_plan import StepPlan
from workers.engine.step_shape import TokenCount
from workers.models.loader import load_model
from workers.sampling.logprobs import prompt_logprobs

PROMPT = [1, 72, 101, 108, 108, 111, 44, 32, 108, 97, 110, 101, 119, 97, 121, 33, 10, 84]  # 18 tokens


@pytest.fixture(scope="module")
def reference() -> list[torch.Tensor]:
    """log_softmax of the logits predicting PROMPT[j], for j = 1..17, one pass per j."""
    model, config, _ = load_model("tiny", dtype="float32")
    runner, alloc = make_runner(model, config, num_blocks=256)
    rows = []
    for j in range(1, len(PROMPT)):
        seq = Sequence(f"ref{j}", PROMPT[:j])
        rows.append(torch.log_softmax(run_step(runner, alloc, [(seq, j)])[seq.seq_id], dim=-1))
    return rows


def _engine(**kwargs):
    engine = make_engine(**kwargs)
    engine.prompt_logprobs_fn = prompt_logprobs
    return engine


def _seq(seq_id: str, k: int | None = 2, prompt: list[int] = PROMPT) -> Sequence:
    return Sequence(seq_id, list(prompt), SamplingParams(max_tokens=3, ignore_eos=True, prompt_logprobs=k))


def _check(outputs, reference: list[torch.Tensor], k: int = 2) -> None:
    with_prompt = [o for o in outputs if o.prompt_logprobs is not None]
    assert len(with_prompt) == 1 and with_prompt[0].token_ids, "once, with the first sampled token"
    lps = with_prompt[0].prompt_logprobs
    assert len(lps) == len(PROMPT) - 1
    for j, (logprob, top) in enumerate(lps, start=1):
        ref = reference[j - 1]
        assert logprob == pytest.approx(ref[PROMPT[j]].item(), abs=1e-4), f"token {j}"
        values, ids = ref.topk(k)
        assert [t for t, _ in top] == ids.tolist()
        assert [v for _, v in top] == pytest.approx(values.tolist(), abs=1e-4)


def test_chunked_prefill_beside_other_requests_matches_the_reference(reference) -> None:
    engine = _engine(budget=7)  # 18 prompt tokens in chunks of at most 7
    others = [Sequence(f"o{i}", [1, 50 + i, 60 + i], SamplingParams(max_tokens=6, ignore_eos=True))
              for i in range(2)]
    outputs = drain(engine, [others[0], _seq("p"), others[1]])
    _check(outputs["p"], reference)
    assert all(o.prompt_logprobs is None for i in range(2) for o in outputs[f"o{i}"])


def test_a_cached_prompt_is_computed_again_for_its_logprobs(reference) -> None:
    engine = _engine(budget=64)
    drain(engine, [_seq("warm", k=None)])
    assert engine.scheduler.block_manager.num_cached_blocks > 0
    outputs = drain(engine, [_seq("p")])
    _check(outputs["p"], reference)


def test_preemption_keeps_the_logprobs_already_computed(reference) -> None:
    engine = _engine(budget=7)
    seq = _seq("p")
    engine.add(seq)
    engine.step()  # the first chunk: 7 positions
    assert len(seq.prompt_logprobs) == 7
    sched = engine.scheduler
    sched._preempt(seq, StepPlan(budget=0, cost=TokenCount(), time_limit=0.0))  # as under KV pressure
    assert seq.num_computed_tokens == 0 and seq.num_preemptions == 1
    outputs = drain(engine, [])
    _check(outputs["p"], reference)


def test_an_engine_without_the_function_refuses_such_requests() -> None:
    engine = make_engine()
    with pytest.raises(InvalidRequest, match="prompt logprobs"):
        engine.add(_seq("p"))
    engine.add(Sequence("q", list(PROMPT), SamplingParams(max_tokens=2)))  # without prompt logprobs: fine
