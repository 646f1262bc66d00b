"""Arrival processes: when requests of one endpoint are sent, open loop.

- Poisson: exponential gaps at `rate` per second;
- Burst: `size` requests at once every `every_s` seconds (first burst at `start_s`);
- Trace: the lines of a trace file for this endpoint, at their own times, with their
  own prompt and output lengths.

`scale` multiplies rates (a sweep's `rate=2` sends twice as often): Poisson and bursts
shorten their gaps (a burst schedule is compressed, start included), a trace is replayed
faster. The same seed gives the same times.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class TraceLine:
    at_s: float
    endpoint: str
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Poisson:
    rate_per_s: float

    def times(self, duration_s: float, rng: random.Random, scale: float = 1.0) -> list[float]:
        rate = self.rate_per_s * scale
        out: list[float] = []
        if rate <= 0:
            return out
        t = rng.expovariate(rate)
        while t < duration_s:
            out.append(t)
            t += rng.expovariate(rate)
        return out

    @property
    def mean_rate(self) -> float:
        return self.rate_per_s

    def scaled(self, factor: float) -> Poisson:
        return Poisson(self.rate_per_s * factor)


@dataclass(frozen=True)
class Burst:
    every_s: float
    size: int
    start_s: float = 0.0

    def times(self, duration_s: float, rng: random.Random, scale: float = 1.0) -> list[float]:
        out: list[float] = []
        t = self.start_s / scale
        while t < duration_s:
            out += [t] * self.size
            t += self.every_s / scale
        return out

    @property
    def mean_rate(self) -> float:
        return self.size / self.every_s

    def scaled(self, factor: float) -> Burst:
        return Burst(self.every_s / factor, self.size, self.start_s / factor)


@dataclass(frozen=True)
class Trace:
    path: Path
    lines: tuple[TraceLine, ...]  # this endpoint's lines, in time order

    def times(self, duration_s: float, rng: random.Random, scale: float = 1.0) -> list[float]:
        return [line.at_s / scale for line in self.lines if line.at_s / scale < duration_s]

    @property
    def mean_rate(self) -> float:
        if not self.lines:
            return 0.0
        span = self.lines[-1].at_s or 1.0
        return len(self.lines) / span

    def scaled(self, factor: float) -> Trace:
        return Trace(self.path, tuple(replace(x, at_s=x.at_s / factor) for x in self.lines))


Arrival = Poisson | Burst | Trace


def read_trace(path: Path) -> list[TraceLine]:
    """Lines `time_s endpoint prompt_tokens max_tokens`, whitespace or comma separated;
    blank lines and `#` comments skipped. Errors name the file and line."""
    out: list[TraceLine] = []
    for num, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 4:
            raise ValueError(f"{path}:{num}: expected `time_s endpoint prompt_tokens max_tokens`, got {raw!r}")
        try:
            item = TraceLine(float(parts[0]), parts[1], int(parts[2]), int(parts[3]))
        except ValueError:
            raise ValueError(f"{path}:{num}: time must be a number and token counts integers, got {raw!r}") from None
        if item.at_s < 0 or item.prompt_tokens < 1 or item.max_tokens < 1:
            raise ValueError(f"{path}:{num}: time >= 0 and token counts >= 1 expected, got {raw!r}")
        out.append(item)
    return sorted(out, key=lambda t: t.at_s)
