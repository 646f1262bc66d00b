"""Named simulated workers (`laneway worker --model sim:NAME`, `laneway plan --preset NAME`).

A preset is a cost model plus the memory facts that size the KV pool: the pool is what
is left of the replica's memory after weights, so the KV cliff sits where it would on
the real machine. Sources for every figure are in the `source` strings and in
docs/capacity.md. `sim:PATH.json` loads a calibration written by `laneway calibrate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepCost
from workers.sim.hardware import B200, GB, H100_SXM
from workers.sim.host_overhead import WithHostOverhead
from workers.sim.model_shape import (
    ModelShape,
    MoeShape,
    gqa_kv_bytes_per_token,
    llama_attention_flops_per_pair,
)
from workers.sim.roofline import RooflineCost

MEMORY_UTILIZATION = 0.9  # share of device memory a serving stack takes (vLLM's default)
ACTIVATION_RESERVE_BYTES = 2 * GB  # per device: activations, CUDA graphs, workspace


@dataclass(frozen=True)
class SimPreset:
    name: str
    cost: StepCost
    kv_bytes_per_token: int
    kv_memory_bytes: int  # the KV pool: free memory after weights
    max_model_len: int
    num_devices: int  # what a GPU-hour price multiplies
    description: str
    host_overhead: LinearCost | None = None  # engine time per step beyond the pass (host_overhead.py)

    def num_kv_blocks(self, block_size: int, kv_memory_bytes: int | None = None) -> int:
        memory = self.kv_memory_bytes if kv_memory_bytes is None else kv_memory_bytes
        return memory // (self.kv_bytes_per_token * block_size)

    @property
    def engine_step_cost(self) -> StepCost:
        """A whole engine step, for simulations with no real engine around them."""
        return self.cost if self.host_overhead is None else WithHostOverhead(self.cost, self.host_overhead)

    @property
    def kv_capacity_tokens(self) -> int:
        return self.kv_memory_bytes // self.kv_bytes_per_token


def _gpu_preset(name: str, cost: RooflineCost, description: str) -> SimPreset:
    hw, model = cost.hardware, cost.model
    usable = int(hw.total_memory_bytes * MEMORY_UTILIZATION)
    free = usable - model.weight_bytes - hw.num_devices * ACTIVATION_RESERVE_BYTES
    assert free > 0, f"{name}: weights ({model.weight_bytes / GB:.0f} GB) do not fit {hw.name}"
    return SimPreset(name, cost, model.kv_bytes_per_token, free, model.max_model_len, hw.num_devices, description)


LLAMA3_8B = ModelShape(
    name="llama3-8b", dense_weight_bytes=16_060_000_000,  # 8.03B params, bf16
    kv_bytes_per_token=gqa_kv_bytes_per_token(32, 8, 128, 2), active_params=8_030_000_000,
    attention_flops_per_pair=llama_attention_flops_per_pair(32, 32, 128), max_model_len=8192)
LLAMA3_70B = ModelShape(
    name="llama3-70b", dense_weight_bytes=141_100_000_000,  # 70.55B params, bf16
    kv_bytes_per_token=gqa_kv_bytes_per_token(80, 8, 128, 2), active_params=70_550_000_000,
    attention_flops_per_pair=llama_attention_flops_per_pair(80, 64, 128), max_model_len=8192)
# Seed 003's Kimi-style MoE: 61 layers of 384 routed experts (8 per token) at 22.5 MB each
# (INT4), 5.6 GB of always-read weights, 2.8 GB of K/V per 80K-token context (MLA, 35 KB a
# token), ~32B active parameters. Attention: MLA, 64 heads, q.k over 192 dims, v of 128.
KIMI_STYLE_MOE = ModelShape(
    name="kimi-style-moe", dense_weight_bytes=5_600_000_000, kv_bytes_per_token=35_000,
    active_params=32_000_000_000, attention_flops_per_pair=2 * 61 * 64 * (192 + 128), max_model_len=131072,
    moe=MoeShape(num_experts=384, experts_per_token=8, expert_bytes=22_500_000, num_moe_layers=61))

# cpu-small: the real engine's `small` preset (104M params, bf16) on one thread of this
# machine's 2 shared cores (AMD EPYC), fitted by `laneway calibrate --measure --repeats 3`
# (then --rows with --terms fixed,per_token,per_pair): 9 pooled passes, RMS error 7.6%,
# worst 14.2% (docs/capacity.md). Compute-bound: a token costs ~0.9 ms whether decoded or
# prefilled. Host overhead, from the same run: 0.17 ms + 0.012 ms per sequence a step.
CPU_SMALL_COST = LinearCost(fixed_s=14.553e-3, per_token_s=0.9243e-3, per_pair_s=2.389e-6,
                            source="laneway calibrate --measure (small, 1 thread, this machine)")
CPU_SMALL_HOST = LinearCost(fixed_s=0.167e-3, per_seq_s=0.0121e-3, source="laneway calibrate --measure (host share)")
CPU_SMALL_KV_BYTES_PER_TOKEN = gqa_kv_bytes_per_token(12, 4, 64, 2)
CPU_SMALL_KV_MEMORY = 512 * 10**6  # what `laneway bench lanes` gives the real worker

PRESETS: dict[str, SimPreset] = {
    "h100-llama3-8b": _gpu_preset(
        "h100-llama3-8b",
        RooflineCost(H100_SXM, LLAMA3_8B, fixed_s=0.6e-3, mbu=0.75, mfu=0.5, attention_mfu=0.4),
        "Llama 3 8B bf16 on one H100 SXM"),
    "h100-llama3-70b-tp4": _gpu_preset(
        "h100-llama3-70b-tp4",
        RooflineCost(H100_SXM.times(4), LLAMA3_70B, fixed_s=2.5e-3, mbu=0.65, mfu=0.45, attention_mfu=0.4),
        "Llama 3 70B bf16 on 4x H100 SXM, tensor parallel"),
    "8xb200-moe": _gpu_preset(
        "8xb200-moe",
        # fixed 5.2 ms: the seed's linear-fit intercept. MBU 10.2% of the raw 64 TB/s is the
        # seed's ~13% of its 50 TB/s effective; MFU 6.4% is the seed's prefill figure.
        RooflineCost(B200.times(8), KIMI_STYLE_MOE, fixed_s=5.2e-3, mbu=0.1016, mfu=0.064, attention_mfu=0.2),
        "Kimi-style 1T MoE (INT4 experts) on 8x B200, TP8"),
    "cpu-small": SimPreset("cpu-small", CPU_SMALL_COST, CPU_SMALL_KV_BYTES_PER_TOKEN, CPU_SMALL_KV_MEMORY, 2048, 1,
                           "the `small` preset (104M, bf16) on this 2-core CPU, calibrated", CPU_SMALL_HOST),
}


def get_preset(spec: str) -> SimPreset:
    """A preset name, or a path to a `laneway calibrate` JSON (a .json file)."""
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.endswith(".json"):
        return preset_from_calibration(Path(spec))
    raise KeyError(f"unknown simulated preset {spec!r}; presets: {', '.join(PRESETS)}, or a calibration .json")


def preset_from_calibration(path: Path) -> SimPreset:
    """A calibration file names the preset it refines (memory facts) and holds the fit."""
    data = json.loads(path.read_text())
    base = PRESETS[data.get("base_preset", "cpu-small")]
    cost = LinearCost.from_json(data["cost"])
    host = LinearCost.from_json(data["host_overhead"]) if data.get("host_overhead") else None
    return SimPreset(f"{base.name}@{path.name}", cost, base.kv_bytes_per_token,
                     int(data.get("kv_memory_bytes", base.kv_memory_bytes)), base.max_model_len, base.num_devices,
                     f"{base.description}; cost from {path}", host)
