"""The engine's own time per step beyond the forward pass: scheduling, sampling,
detokenizing, postprocessing, handing outputs to the gRPC side.

A simulated worker pays it for real (its engine is the real one; only the forward pass
sleeps), so its cost model leaves it out. The virtual worker and the chain have no real
engine around them and add it: their step time is forward + host. GPU presets carry
none: there the host overlaps the device's work, and its share is in their `fixed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepCost, StepShape


@dataclass(frozen=True)
class WithHostOverhead:
    forward: StepCost
    host: LinearCost

    def step_time(self, shape: StepShape) -> float:
        if shape.num_tokens == 0:
            return 0.0
        return self.forward.step_time(shape) + self.host.step_time(shape)

    def describe(self) -> str:
        return f"{self.forward.describe()}; plus host {self.host.describe()}"
