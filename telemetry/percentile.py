"""Percentiles as Laneway's reports compute them: nearest rank.

The same definition as the lane window controller and `laneway bench` (and numpy's
method="inverted_cdf"): the p-th percentile is a value that was actually observed, the
smallest one with at least p% of the samples at or below it. So a review's p95 TTFT can
be compared one to one with a benchmark's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """q in [0, 100] of values already sorted ascending; the sequence must not be empty."""
    assert sorted_values, "percentile of no values"
    assert 0.0 <= q <= 100.0, f"percentile must be in [0, 100], got {q}"
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]
