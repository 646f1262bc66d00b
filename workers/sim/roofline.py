"""Per-pass time from first principles, in the seed's form:

    step = fixed
         + (weight bytes read + KV bytes read) / (bandwidth * mbu)
         + linear FLOPs / (peak * mfu) + attention FLOPs / (peak * attention_mfu)

The terms add, with no overlap credited: decode is bandwidth-bound and the compute terms
are small there; prefill is compute-bound and the memory terms are small there, so the
sum is within a few per cent of max(memory, compute) wherever one side dominates, and it
stays linear in its inputs (calibration fits the same features). `fixed` is what no
roofline sees: kernel launches, tensor-parallel collectives, MoE all-to-all.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.engine.step_shape import StepShape
from workers.sim.hardware import Hardware
from workers.sim.model_shape import ModelShape


@dataclass(frozen=True)
class StepBreakdown:
    fixed_s: float
    weights_s: float
    kv_s: float
    linear_compute_s: float
    attention_compute_s: float

    @property
    def total_s(self) -> float:
        return self.fixed_s + self.weights_s + self.kv_s + self.linear_compute_s + self.attention_compute_s


@dataclass(frozen=True)
class RooflineCost:
    hardware: Hardware
    model: ModelShape
    fixed_s: float
    mbu: float  # share of raw bandwidth a pass achieves
    mfu: float  # share of peak FLOPs for the linear layers
    attention_mfu: float  # share of peak FLOPs for attention

    def __post_init__(self) -> None:
        for name in ("mbu", "mfu", "attention_mfu"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not self.fixed_s >= 0.0:
            raise ValueError(f"fixed_s must be >= 0, got {self.fixed_s}")

    def breakdown(self, shape: StepShape) -> StepBreakdown:
        hw, m = self.hardware, self.model
        bandwidth = hw.total_bandwidth * self.mbu
        flops = hw.total_peak_flops
        if shape.num_tokens == 0:
            return StepBreakdown(0.0, 0.0, 0.0, 0.0, 0.0)
        return StepBreakdown(
            fixed_s=self.fixed_s,
            weights_s=m.weight_bytes_read(shape.num_tokens) / bandwidth,
            kv_s=shape.kv_tokens_read * m.kv_bytes_per_token / bandwidth,
            linear_compute_s=2.0 * m.active_params * shape.num_tokens / (flops * self.mfu),
            attention_compute_s=m.attention_flops_per_pair * shape.attention_pairs / (flops * self.attention_mfu),
        )

    def step_time(self, shape: StepShape) -> float:
        return self.breakdown(shape).total_s

    def describe(self) -> str:
        return (f"roofline: {self.model.name} on {self.hardware.name}, fixed {self.fixed_s * 1e3:.2f} ms, "
                f"MBU {self.mbu:.0%}, MFU {self.mfu:.1%} (attention {self.attention_mfu:.0%})")
