"""Token-length distributions for prompts and outputs: fixed, uniform, or lognormal.

In a workload file: `32`, `{uniform: [24, 96]}` (inclusive), or
`{lognormal: {mean: 400, sigma: 0.6, min: 16, max: 2000}}` where `mean` is the mean of
the distribution itself (not of its log) and draws outside [min, max] are redrawn, so a
long tail never turns into a spike at the clip edge.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Fixed:
    value: int

    def draw(self, rng: random.Random) -> int:
        return self.value

    @property
    def mean(self) -> float:
        return float(self.value)

    @property
    def max(self) -> int:
        return self.value


@dataclass(frozen=True)
class Uniform:
    low: int
    high: int  # inclusive

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def max(self) -> int:
        return self.high


@dataclass(frozen=True)
class LogNormal:
    mean_value: float
    sigma: float
    low: int = 1
    high: int = 1_000_000

    @property
    def mu(self) -> float:
        # E[X] = exp(mu + sigma^2 / 2) for X = exp(N(mu, sigma^2))
        return math.log(self.mean_value) - self.sigma**2 / 2

    def draw(self, rng: random.Random) -> int:
        for _ in range(1000):
            v = round(rng.lognormvariate(self.mu, self.sigma))
            if self.low <= v <= self.high:
                return v
        raise AssertionError(f"lognormal(mean {self.mean_value}, sigma {self.sigma}) almost never falls in "
                             f"[{self.low}, {self.high}]; widen the bounds")

    @property
    def mean(self) -> float:
        """Mean of the redrawn (truncated) distribution: what a capacity plan should use.

        A draw v is kept when round(v) is in [low, high], i.e. ln v in [a, b) below."""
        a = (math.log(self.low - 0.5) - self.mu) / self.sigma
        b = (math.log(self.high + 0.5) - self.mu) / self.sigma
        mass = _phi(b) - _phi(a)
        return math.exp(self.mu + self.sigma**2 / 2) * (_phi(b - self.sigma) - _phi(a - self.sigma)) / mass

    @property
    def max(self) -> int:
        return self.high


Length = Fixed | Uniform | LogNormal


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
