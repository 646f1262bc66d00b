"""`laneway plan`: capacity from a cost model, by closed-form chain and by simulation (SIMULATED)."""

from laneway.plan.chain import plan_chain
from laneway.plan.simulate import EngineShape, simulate

__all__ = ["EngineShape", "plan_chain", "simulate"]
