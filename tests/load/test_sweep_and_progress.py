"""Sweep specs and curves, the progress line, and the generator self-test."""

from __future__ import annotations

import io

import pytest

from laneway.load.budgets import verdict
from laneway.load.client import RequestResult
from laneway.load.progress import Progress
from laneway.load.self_test import run_self_test
from laneway.load.stats import summarize
from laneway.load.sweep import SweepSpec, curves, parse_sweep
from laneway.load.workload import Budget


def test_parse_sweep() -> None:
    assert parse_sweep("rate=2,0.5,1") == SweepSpec("rate", (0.5, 1.0, 2.0))
    assert parse_sweep("concurrency=1,4") == SweepSpec("concurrency", (1.0, 4.0))
    for bad in ("rate", "speed=1,2", "rate=a", "rate=0,1", "concurrency=1.5"):
        with pytest.raises(ValueError, match="--sweep"):
            parse_sweep(bad)


def _summary(endpoint: str, ttft_s: float) -> object:
    r = RequestResult(endpoint, 0.0, 0.0, status=200, ttft_s=ttft_s, token_times=[ttft_s, ttft_s + 0.01],
                      finished_at=ttft_s + 0.01, output_tokens=2, finish_reason="length")
    return summarize(endpoint, [r], 1.0, 300, None)


def test_curve_breaks_at_the_first_point_over_budget() -> None:
    per_point = [[_summary("a", t)] for t in (0.1, 0.2, 0.5, 0.25)]
    verdicts = [[verdict(s.ttft_p95_ms, s.tbt_p95_ms, Budget(300))] for [s] in per_point]
    [c] = curves([1, 2, 4, 8], per_point, verdicts)
    assert c.break_index == 2  # 500 ms > 300; the later recovery does not un-break it
    assert c.last_holding is not None and c.last_holding.value == 2


def test_verdicts() -> None:
    assert verdict(100, 20, Budget(300, 50)) == "holds"
    assert verdict(100, 20, Budget()) == "no budget"
    assert verdict(400, 20, Budget(300, 50)).startswith("BREAKS: TTFT p95 400 > 300")
    assert "TBT p95" in verdict(100, 80, Budget(300, 50))
    assert "not served" in verdict(100, 20, Budget(300, 50), failed_share=0.05)


def test_progress_line_counts_outcomes() -> None:
    out = io.StringIO()
    p = Progress("x1", total=3, duration_s=10, out=out)
    p.on_sent(0.002)
    p.on_sent(0.001)
    p.on_done(RequestResult("chat", 0, 0, status=200, ttft_s=0.05, output_tokens=4, finish_reason="stop"))
    p.on_done(RequestResult("chat", 0, 0, status=429))
    line = p.line()
    assert "sent 2/3" in line and "ok 1 429 1 err 0" in line and "in flight 0" in line
    assert "chat" in line and "ttft p95 50ms" in line


def test_self_test_drives_a_separate_fake_server() -> None:
    [row] = run_self_test([20.0], duration_s=1.0, output_tokens=2, ttft_ms=5, tbt_ms=1)
    assert row.num_requests > 5 and row.num_ok == row.num_requests
    assert row.lag_p50_ms <= row.lag_p99_ms <= row.lag_max_ms
