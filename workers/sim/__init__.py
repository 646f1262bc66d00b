"""Simulated workers: the real scheduler and engine loop, with the forward pass replaced by
time from a cost model. Everything it produces is labelled SIMULATED."""

from workers.engine.step_shape import StepCost, StepShape, shape_of
from workers.sim.presets import PRESETS, SimPreset, get_preset

__all__ = ["PRESETS", "SimPreset", "StepCost", "StepShape", "get_preset", "shape_of"]
