"""Test helpers: a fake OpenAI server fixture and a workload builder."""

from __future__ import annotations

from laneway.load.arrivals import Arrival
from laneway.load.lengths import Fixed
from laneway.load.workload import Budget, EndpointWorkload, Workload


def endpoint(name: str, arrival: Arrival, prompt: int = 16, output: int = 4, stream: bool = True,
             budget: Budget = Budget()) -> EndpointWorkload:
    return EndpointWorkload(name, arrival, Fixed(prompt), Fixed(output), stream, budget=budget)


def make_workload(*endpoints: EndpointWorkload, duration_s: float = 1.0, api: str = "completions") -> Workload:
    return Workload(tuple(endpoints), duration_s=duration_s, seed=5, api=api)
