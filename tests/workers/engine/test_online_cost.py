"""The worker's step-time model: fitted from the warm-up, kept current by the steps it runs."""

from __future__ import annotations

import random

import pytest

from tests.workers.engine.engine_factory import make_engine
from workers.engine.cost_fit import FitError, MeasuredStep
from workers.engine.linear_cost import LinearCost
from workers.engine.online_cost import OnlineStepCost
from workers.engine.step_shape import StepShape
from workers.engine.warmup import warm_up

TRUE = LinearCost(fixed_s=0.005, per_token_s=0.001, per_kv_token_s=2e-6)


def rows(cost: LinearCost, n: int, seed: int = 0, scale: float = 1.0) -> list[MeasuredStep]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            shape = StepShape.decode(rng.randrange(1, 32), rng.randrange(16, 1024))
        else:
            shape = StepShape.prefill(rng.randrange(16, 512), rng.randrange(0, 256))
        out.append(MeasuredStep(shape, cost.step_time(shape) * scale))
    return out


def test_fitted_model_predicts_the_rows_it_was_fitted_on() -> None:
    model = OnlineStepCost.fitted(rows(TRUE, 40), source="test")
    shape = StepShape.decode(8, 200)
    assert model.step_time(shape) == pytest.approx(TRUE.step_time(shape), rel=0.02)


def test_refits_follow_a_machine_that_got_slower() -> None:
    model = OnlineStepCost.fitted(rows(TRUE, 40), source="test", window=64, refit_every=16)
    shape = StepShape.decode(8, 200)
    before = model.step_time(shape)
    for row in rows(TRUE, 64, seed=1, scale=2.0):  # another process now shares the cores
        model.observe(row.shape, row.seconds)
    assert model.num_refits == 4
    assert model.step_time(shape) > 1.3 * before


def test_a_failed_refit_keeps_the_last_model() -> None:
    model = OnlineStepCost(TRUE, anchors=(), window=8, refit_every=4)
    for _ in range(4):  # one shape only: no second term can be told apart
        model.observe(StepShape.decode(4, 100), 0.02)
    assert model.cost == TRUE


def test_too_few_rows_cannot_be_fitted() -> None:
    with pytest.raises(FitError):
        OnlineStepCost.fitted(rows(TRUE, 1), source="test")


def test_warm_up_measures_prefill_and_decode_steps_on_a_real_engine_and_leaves_it_idle() -> None:
    engine = make_engine("tiny", num_blocks=512, block_size=16, budget=512, max_num_seqs=16, max_model_len=512)
    measured = warm_up(engine, vocab_size=256)
    assert not engine.has_work()
    assert any(r.shape.num_tokens >= 64 and r.shape.num_seqs == 1 for r in measured), "prefill rows"
    assert any(r.shape.num_seqs == r.shape.num_tokens >= 4 for r in measured), "decode batch rows"
    model = OnlineStepCost.fitted(measured, source="warm-up")
    assert model.step_time(StepShape.prefill(256)) > model.step_time(StepShape.decode(1, 32)) > 0
