"""`laneway plan`: chain and simulation agree where they should, disagree out loud, say SIMULATED."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laneway.cli import main as laneway_main
from laneway.load.arrivals import Poisson
from laneway.load.lengths import Fixed
from laneway.load.workload import Budget, EndpointWorkload, Workload
from laneway.plan.capacity import chain_at, decode_curve, kv_cliff_batch, workers_needed
from laneway.plan.chain import EndpointMix, plan_chain
from laneway.plan.simulate import EngineShape, simulate
from workers.engine.linear_cost import LinearCost
from workers.sim.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
COST = LinearCost(fixed_s=0.015, per_token_s=0.001)


def workload(rate: float, budget: Budget = Budget(), duration_s: float = 120.0) -> Workload:
    e = EndpointWorkload("chat", Poisson(rate), Fixed(64), Fixed(32), budget=budget)
    return Workload((e,), duration_s=duration_s, seed=3, api="completions")


def test_chain_at_light_load_is_one_stream_decoding_alone() -> None:
    mix = [EndpointMix("chat", 0.01, 64, 0, 32)]
    r = plan_chain(COST, mix, max_num_seqs=64, max_num_batched_tokens=512, kv_capacity_tokens=10**6)
    assert r.is_stable and r.concurrency == pytest.approx(1.0)
    assert r.endpoints[0].tbt_s == pytest.approx(0.016, rel=0.01)  # fixed + one token
    assert r.output_tps == pytest.approx(0.32)


def test_chain_reports_overload_instead_of_numbers() -> None:
    mix = [EndpointMix("chat", 1000.0, 64, 0, 32)]
    r = plan_chain(COST, mix, max_num_seqs=64, max_num_batched_tokens=512, kv_capacity_tokens=10**6)
    assert not r.is_stable and r.reason


def test_chain_and_simulation_agree_at_moderate_load() -> None:
    preset = PRESETS["cpu-small"]
    shape = EngineShape()
    w = workload(rate=1.0)
    chain = chain_at(preset, shape, w, None, 1)
    sim = simulate(preset, shape, w, None)
    assert chain.is_stable
    e = sim.endpoint("chat")
    assert e.completed == e.num_requests > 60
    assert chain.endpoints[0].tbt_s * 1e3 == pytest.approx(e.tbt_p50_ms, rel=0.3)
    assert chain.output_tps == pytest.approx(sim.output_tps, rel=0.15)


def test_more_workers_are_needed_as_the_rate_grows() -> None:
    preset, shape = PRESETS["cpu-small"], EngineShape()
    budget = {"chat": Budget(ttft_p95_ms=400, tbt_p95_ms=60)}
    low = workers_needed(preset, shape, workload(0.5, duration_s=60), None, budget)
    high = workers_needed(preset, shape, workload(4.0, duration_s=60), None, budget)
    assert low.sim_workers is not None and high.sim_workers is not None
    assert high.sim_workers > low.sim_workers
    assert all(v == "holds" for v in high.verdicts.values())


def test_decode_curve_finds_a_plateau_before_the_cliff() -> None:
    curve = decode_curve(PRESETS["cpu-small"], context=200, mean_final_tokens=300, kv_capacity_tokens=41_664)
    assert curve.cliff_batch == kv_cliff_batch(41_664, 300) == 139
    best = max(p.aggregate_tps for p in curve.points if p.batch_size < curve.cliff_batch)
    assert curve.plateau.aggregate_tps >= 0.9 * best
    assert curve.plateau_batch < curve.cliff_batch


def test_plan_command_labels_everything_simulated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "plan.json"
    code = laneway_main(["plan", "--workload", str(ROOT / "laneway/load/examples/mixed.yaml"), "--policy",
                         str(ROOT / "policies/default.yaml"), "--preset", "cpu-small", "--workers", "2",
                         "--gpu-hour-price", "1.0", "--duration", "30", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert text.startswith("# laneway plan: SIMULATED")
    assert "inline-completion" in text and "per M output tokens" in text and "plateau" in text
    data = json.loads(out.read_text())
    assert data["simulated"] is True and data["num_workers"] == 2
    assert {e["name"] for e in data["simulation"]["endpoints"]} == {"inline-completion", "chat", "nightly-labeling"}


def test_seed_check_command(capsys: pytest.CaptureFixture) -> None:
    assert laneway_main(["plan", "--seed-check"]) == 0
    assert "31.6 ms" in capsys.readouterr().out
