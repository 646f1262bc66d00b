"""The simulator reproduces seed 003's four regions on a preset: linear climb, bend, plateau, cliff.

Closed loop on the virtual worker (real scheduler and block manager) with cpu-small's
calibrated costs and 512-token KV pool: users with contexts of their own (75% of each
prompt is the user's context, servable from the prefix cache while it has room).
"""

from __future__ import annotations

import pytest

from laneway.plan.capacity import RegionPoint, regions
from laneway.plan.simulate import EngineShape
from workers.sim.presets import PRESETS


@pytest.fixture(scope="module")
def curve() -> dict[int, RegionPoint]:
    shape = EngineShape(max_num_seqs=512, max_num_batched_tokens=2048, max_model_len=2048)
    pts = regions(PRESETS["cpu-small"], shape, prompt_tokens=512, output_tokens=128,
                  concurrencies=[1, 2, 16, 32, 48, 96], horizon_s=150, cached_share=0.75)
    return {p.concurrency: p for p in pts}


def test_region_1_linear_climb(curve: dict[int, RegionPoint]) -> None:
    assert curve[2].aggregate_tps >= 1.6 * curve[1].aggregate_tps
    assert curve[2].per_stream_tps >= 0.8 * curve[1].per_stream_tps


def test_region_2_the_bend(curve: dict[int, RegionPoint]) -> None:
    assert curve[16].aggregate_tps > 2 * curve[2].aggregate_tps  # still gaining ...
    assert curve[16].per_stream_tps < 0.5 * curve[1].per_stream_tps  # ... at each stream's expense


def test_region_3_plateau(curve: dict[int, RegionPoint]) -> None:
    assert curve[48].aggregate_tps == pytest.approx(curve[32].aggregate_tps, rel=0.15)
    assert curve[32].num_preemptions == curve[48].num_preemptions == 0


def test_region_4_cliff(curve: dict[int, RegionPoint]) -> None:
    plateau = max(curve[32].aggregate_tps, curve[48].aggregate_tps)
    assert curve[96].aggregate_tps < 0.7 * plateau  # the KV working set no longer fits
    assert curve[96].num_preemptions > 0
    assert curve[96].ttft_p50_s > 10 * curve[48].ttft_p50_s  # TTFT explodes
