"""Cost-model units: step shapes, expert sharing, roofline terms, presets' memory, the runner."""

from __future__ import annotations

import pytest

from tests.sim.factories import make_output, make_seq
from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepShape, shape_of
from workers.sim.experts import unique_experts
from workers.sim.hardware import GB, H100_SXM
from workers.sim.presets import ACTIVATION_RESERVE_BYTES, MEMORY_UTILIZATION, PRESETS
from workers.sim.roofline import RooflineCost


def test_shape_of_counts_decodes_and_a_prefill_chunk() -> None:
    decode = make_seq("d", num_tokens=11, num_computed=10)  # computes position 10, reads 11 K/V
    prefill = make_seq("p", num_tokens=20, num_computed=5)  # chunk [5, 9): positions 5..8
    shape = shape_of(make_output((decode, 1), (prefill, 4)))
    assert shape == StepShape(num_seqs=2, num_tokens=5, kv_tokens_read=11 + 9, attention_pairs=11 + (6 + 7 + 8 + 9))


def test_decode_and_prefill_constructors_match_shape_of() -> None:
    assert StepShape.decode(3, 10) == shape_of(make_output(*((make_seq(str(i), 11, 10), 1) for i in range(3))))
    assert StepShape.prefill(4, context=5) == shape_of(make_output((make_seq("p", 20, 5), 4)))
    assert StepShape.decode(2, 10) + StepShape.prefill(4, 5) == StepShape(3, 6, 22 + 9, 22 + 30)


def test_unique_experts_is_the_occupancy_expectation() -> None:
    assert unique_experts(384, 8, 1) == pytest.approx(8.0)
    assert unique_experts(384, 8, 16) == pytest.approx(109.8, abs=0.1)  # seed 003: "~109 unique"
    assert unique_experts(384, 8, 16) < 16 * 8  # duplicates: sub-linear sharing
    assert unique_experts(384, 8, 10_000) == pytest.approx(384.0)


def test_dense_roofline_reads_weights_once_per_pass() -> None:
    cost = PRESETS["h100-llama3-8b"].cost
    assert isinstance(cost, RooflineCost)
    one, many = cost.breakdown(StepShape.decode(1, 1000)), cost.breakdown(StepShape.decode(64, 1000))
    assert one.weights_s == many.weights_s  # shared by every stream in the pass
    assert many.kv_s == pytest.approx(64 * one.kv_s)  # each stream reads its own context
    assert many.total_s == pytest.approx(many.fixed_s + many.weights_s + many.kv_s + many.linear_compute_s
                                         + many.attention_compute_s)
    # Region 1: aggregate climbs almost linearly while weights dominate.
    assert 1 / one.total_s * 8 * 0.9 < 8 / cost.step_time(StepShape.decode(8, 1000))


def test_moe_roofline_shares_experts_across_the_batch() -> None:
    cost = PRESETS["8xb200-moe"].cost
    b16, b32 = cost.breakdown(StepShape.decode(16, 80_000)), cost.breakdown(StepShape.decode(32, 80_000))
    assert b16.weights_s < b32.weights_s < 2 * b16.weights_s


def test_moe_preset_matches_the_seeds_measured_pass_at_b16() -> None:
    # Seed 003: 36.8 ms measured per pass at B=16, 80K context, TP8 on 8x B200.
    t = PRESETS["8xb200-moe"].cost.step_time(StepShape.decode(16, 80_000))
    assert t == pytest.approx(36.8e-3, rel=0.05)


def test_gpu_presets_size_the_kv_pool_from_memory_left_after_weights() -> None:
    p = PRESETS["h100-llama3-8b"]
    free = int(80 * GB * MEMORY_UTILIZATION) - 16_060_000_000 - ACTIVATION_RESERVE_BYTES
    assert p.kv_memory_bytes == free
    assert p.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert p.num_kv_blocks(16) == free // (p.kv_bytes_per_token * 16)
    assert p.num_kv_blocks(16, kv_memory_bytes=16 * 10**6) == 16 * 10**6 // (p.kv_bytes_per_token * 16)
    assert PRESETS["h100-llama3-70b-tp4"].num_devices == 4 and PRESETS["8xb200-moe"].num_devices == 8


def test_a_model_that_does_not_fit_is_refused() -> None:
    from workers.sim.model_shape import ModelShape
    from workers.sim.presets import _gpu_preset

    huge = ModelShape("huge", 200 * GB, 1000, 1, 1, 1024)
    with pytest.raises(AssertionError, match="do not fit"):
        _gpu_preset("x", RooflineCost(H100_SXM, huge, 0.0, 0.5, 0.5, 0.5), "")


def test_linear_cost_is_the_seeds_fit_for_decode() -> None:
    fit = LinearCost(fixed_s=5.2e-3, per_token_s=1.65e-3)
    assert fit.step_time(StepShape.decode(16, 80_000)) == pytest.approx(31.6e-3)
    assert fit.step_time(StepShape(0, 0, 0, 0)) == 0.0


def test_sim_runner_sleeps_the_predicted_time_and_samples_letters() -> None:
    import torch

    from workers.sampling.sampler import sample
    from workers.sim.sim_runner import SimRunner

    slept: list[float] = []
    cost = LinearCost(fixed_s=0.01, per_token_s=0.001)
    runner = SimRunner(cost, vocab_size=320, sleep=slept.append)
    decode, prefill = make_seq("d", 11, 10), make_seq("p", 20, 0)
    out = make_output((decode, 1), (prefill, 8))  # the prefill chunk does not reach its last token
    logits = runner.run(out)
    assert slept == [pytest.approx(0.01 + 0.001 * 9)]
    assert logits.shape == (1, 320) and logits.dtype == torch.float32
    token = sample(logits, [decode]).token_ids[0]
    assert ord("a") <= token <= ord("z")
    assert runner.stats.num_steps == 1 and runner.stats.num_computed_tokens == 9
    assert runner.stats.simulated_s == pytest.approx(0.019)


@pytest.mark.parametrize(("field_name", "value"), [("mbu", 0.0), ("mfu", 1.5), ("attention_mfu", -0.1),
                                                   ("fixed_s", -1e-3)])
def test_a_roofline_with_impossible_efficiencies_is_a_value_error(field_name: str, value: float) -> None:
    from workers.sim.model_shape import ModelShape

    shape = ModelShape("m", 10 * GB, 1000, 1, 1, 1024)
    fields = {"fixed_s": 0.0, "mbu": 0.5, "mfu": 0.5, "attention_mfu": 0.5, field_name: value}
    with pytest.raises(ValueError, match=f"{field_name} must be"):
        RooflineCost(H100_SXM, shape, **fields)
