"""Calibration recovers known coefficients and reports how well it fits."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from laneway.cli import main as laneway_main
from workers.engine.cost_fit import FitError, MeasuredStep, default_terms, fit_linear_cost
from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepShape
from workers.sim.calibration_rows import read_rows, write_rows
from workers.sim.presets import get_preset

TRUE = LinearCost(fixed_s=12e-3, per_token_s=0.9e-3, per_kv_token_s=3e-6, per_pair_s=2e-6)


def synthetic_rows(cost: LinearCost, noise: float, seed: int = 0) -> list[MeasuredStep]:
    rng = random.Random(seed)
    shapes = [StepShape.decode(b, c) for b in (1, 2, 4, 8, 16, 32) for c in (32, 384, 1024)]
    shapes += [StepShape.prefill(n, c) for n in (64, 256, 512) for c in (0, 512)]
    return [MeasuredStep(s, cost.step_time(s) * (1 + rng.uniform(-noise, noise))) for s in shapes]


def test_exact_measurements_give_back_the_exact_coefficients() -> None:
    fit = fit_linear_cost(synthetic_rows(TRUE, 0.0))
    assert fit.cost.fixed_s == pytest.approx(TRUE.fixed_s, rel=1e-6)
    assert fit.cost.per_token_s == pytest.approx(TRUE.per_token_s, rel=1e-6)
    assert fit.cost.per_kv_token_s == pytest.approx(TRUE.per_kv_token_s, rel=1e-6)
    assert fit.cost.per_pair_s == pytest.approx(TRUE.per_pair_s, rel=1e-6)
    assert fit.rms_rel_error < 1e-9


def test_noisy_measurements_recover_coefficients_and_report_the_noise() -> None:
    fit = fit_linear_cost(synthetic_rows(TRUE, 0.03, seed=1))
    assert fit.cost.fixed_s == pytest.approx(TRUE.fixed_s, rel=0.1)
    assert fit.cost.per_token_s == pytest.approx(TRUE.per_token_s, rel=0.1)
    assert fit.cost.per_pair_s == pytest.approx(TRUE.per_pair_s, rel=0.15)
    assert 0.005 < fit.rms_rel_error < 0.03  # uniform +-3% noise: RMS about 1.7%
    assert fit.max_rel_error == pytest.approx(max(abs(e) for e in fit.residuals))


def test_decode_only_rows_cannot_separate_attention_pairs_from_kv() -> None:
    rows = [r for r in synthetic_rows(TRUE, 0.0) if r.shape.num_tokens == r.shape.num_seqs]
    assert default_terms(rows) == ("fixed", "per_token", "per_kv_token")
    one_context = [r for r in rows if r.shape.kv_tokens_read == r.shape.num_seqs * 385]
    assert default_terms(one_context) == ("fixed", "per_token")  # KV tokens = 385 x tokens: inseparable
    with pytest.raises(FitError, match="per_pair"):
        fit_linear_cost(rows, ("fixed", "per_token", "per_kv_token", "per_pair"))
    with pytest.raises(FitError, match="cannot fit"):
        fit_linear_cost(rows[:2])


def test_rows_round_trip_through_csv_and_bench_json(tmp_path: Path) -> None:
    rows = synthetic_rows(TRUE, 0.0)
    write_rows(tmp_path / "rows.csv", rows)
    assert read_rows(tmp_path / "rows.csv") == [MeasuredStep(r.shape, round(r.seconds, 6)) for r in rows]
    bench = {"decode": [{"batch_size": 4, "mean_context": 100.0, "step_ms": 30.0, "forward_ms": 25.0}]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    assert read_rows(tmp_path / "bench.json") == [MeasuredStep(StepShape(4, 4, 400, 400), 0.025)]
    (tmp_path / "bad.csv").write_text("batch,time\n1,2\n")
    with pytest.raises(FitError, match="header"):
        read_rows(tmp_path / "bad.csv")


def test_calibrate_command_writes_a_calibration_a_sim_worker_can_load(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    write_rows(tmp_path / "rows.csv", synthetic_rows(TRUE, 0.0))
    out = tmp_path / "cal.json"
    assert laneway_main(["calibrate", "--rows", str(tmp_path / "rows.csv"), "--out", str(out)]) == 0
    assert "RMS relative error" in capsys.readouterr().out
    preset = get_preset(str(out))
    assert preset.cost.step_time(StepShape.decode(8, 100)) == pytest.approx(TRUE.step_time(StepShape.decode(8, 100)))
    assert preset.kv_bytes_per_token == get_preset("cpu-small").kv_bytes_per_token
