"""Length distributions draw within bounds and have the means a plan assumes."""

from __future__ import annotations

import random
import statistics

import pytest

from laneway.load.lengths import LogNormal, Uniform


def test_lognormal_mean_is_the_distributions_mean() -> None:
    d = LogNormal(200, 0.5)
    rng = random.Random(1)
    draws = [d.draw(rng) for _ in range(20000)]
    assert statistics.fmean(draws) == pytest.approx(200, rel=0.02)
    assert d.mean == pytest.approx(200, rel=0.005)


def test_lognormal_bounds_hold_and_the_truncated_mean_follows() -> None:
    d = LogNormal(200, 1.0, low=50, high=300)
    rng = random.Random(2)
    draws = [d.draw(rng) for _ in range(20000)]
    assert min(draws) >= 50 and max(draws) <= 300
    assert statistics.fmean(draws) == pytest.approx(d.mean, rel=0.01)
    assert d.mean < 200  # the long tail above 300 was cut off


def test_uniform_is_inclusive() -> None:
    rng = random.Random(0)
    assert {Uniform(3, 5).draw(rng) for _ in range(200)} == {3, 4, 5}
    assert Uniform(3, 5).mean == 4
