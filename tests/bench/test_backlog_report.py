"""The backlog report's arithmetic: interference ratios, refusals in points, bulk completion."""

from __future__ import annotations

import argparse

import pytest

from laneway.bench.backlog_report import (
    FCFS,
    LOADED,
    QUIET,
    bulk_rate_vs_fcfs,
    burst_outcome,
    interference,
    ratio,
    refusals,
    render_markdown,
    verdicts,
)
from laneway.bench.lanes import RunResult
from laneway.bench.scenarios import BULK, INTERACTIVE, STREAMING, Burst
from laneway.load.client import RequestResult
from laneway.load.stats import EndpointSummary


def summary(endpoint: str, *, sent: int = 100, refused: int = 0, ttft_p95: float | None = None,
            ttft_p99: float | None = None, tbt_p95: float | None = None, tok_s: float = 0.0) -> EndpointSummary:
    return EndpointSummary(endpoint=endpoint, sent=sent, completed=sent - refused, refused=refused, errors=0,
                           ttft_p50_ms=None, ttft_p95_ms=ttft_p95, ttft_p99_ms=ttft_p99, tbt_p50_ms=None,
                           tbt_p95_ms=tbt_p95, queue_wait_p50_ms=None, queue_wait_p95_ms=None,
                           output_tokens_per_s=tok_s, goodput_rps=0.0, budget_ttft_ms=None, budget_tbt_ms=None)


def runs() -> list[RunResult]:
    quiet = RunResult(QUIET, "lanes-backlog.yaml", 70.0, [
        summary(INTERACTIVE, refused=5, ttft_p95=200.0, ttft_p99=300.0), summary(STREAMING, tbt_p95=100.0)])
    loaded = RunResult(LOADED, "lanes-backlog.yaml", 90.0, [
        summary(INTERACTIVE, refused=6, ttft_p95=260.0, ttft_p99=900.0), summary(STREAMING, tbt_p95=180.0),
        summary(BULK, sent=32, tok_s=82.0)])
    fcfs = RunResult(FCFS, "global-fcfs.yaml", 85.0, [
        summary(INTERACTIVE, ttft_p95=30_000.0), summary(STREAMING, tbt_p95=120.0),
        summary(BULK, sent=32, tok_s=100.0)])
    return [quiet, loaded, fcfs]


def test_ratio_is_loaded_over_quiet_and_undefined_without_a_baseline():
    assert ratio(300.0, 200.0) == 1.5
    assert ratio(None, 200.0) is None and ratio(300.0, None) is None and ratio(300.0, 0.0) is None


def test_interference_divides_with_the_burst_by_without_it():
    rows = {c.what: c for c in interference(runs())}
    assert rows["interactive TTFT p95 ms"].ratio == pytest.approx(1.3)
    assert rows["interactive TTFT p99 ms"].ratio == pytest.approx(3.0)
    assert rows["streaming TBT p95 ms"].ratio == pytest.approx(1.8)
    assert rows["streaming TTFT p95 ms"].ratio is None, "not measured in the fakes"


def test_refusals_compare_in_points_of_requests_sent():
    rows = {c.what: c for c in refusals(runs())}
    interactive = rows["interactive refused %"]
    assert (interactive.quiet, interactive.loaded) == (5.0, 6.0)


def test_bulk_rate_is_lanes_over_fcfs_with_the_same_burst():
    assert bulk_rate_vs_fcfs(runs()) == pytest.approx(0.82)
    assert bulk_rate_vs_fcfs(runs()[:2]) is None, "no FCFS run: nothing to compare with"


def test_verdicts_name_what_was_met_and_what_was_missed():
    lines = verdicts(runs())
    assert any("interactive TTFT p95" in line and "1.30x" in line and "met" in line for line in lines)
    assert any("streaming TBT p95" in line and "1.80x" in line and "MISSED" in line for line in lines)
    assert any("interactive refused" in line and "met" in line for line in lines)
    assert any("lanes / global-fcfs = 0.82" in line and "met" in line for line in lines)


def _result(at_s: float, ok: bool, finished_at: float, endpoint: str = BULK) -> RequestResult:
    return RequestResult(endpoint=endpoint, scheduled_at=at_s, sent_at=at_s, status=200 if ok else 0,
                         finish_reason="length" if ok else None, finished_at=finished_at,
                         output_tokens=256 if ok else 0,
                         error=None if ok else "not finished before the drain timeout")


def test_the_burst_is_done_when_its_last_request_is():
    burst = Burst(num_requests=3, at_s=20.0)
    done = [_result(20.0, True, 50.0), _result(20.0, True, 95.5), _result(20.0, True, 61.0),
            _result(3.0, True, 4.0, endpoint=INTERACTIVE)]
    outcome = burst_outcome(done, burst)
    assert (outcome.num_sent, outcome.num_done, outcome.output_tokens) == (3, 3, 768)
    assert outcome.done_after_s == pytest.approx(75.5) and outcome.share_done == 1.0
    partial = burst_outcome([*done[:2], _result(20.0, False, 200.0)], burst)
    assert (partial.num_done, partial.done_after_s) == (2, None), "not all done: no completion time"


def test_the_report_renders_every_run_and_comparison():
    args = argparse.Namespace(duration=60.0, seed=7, load=1.0, model="small", max_num_batched_tokens=128,
                              max_num_seqs=32)
    text = render_markdown(runs(), args, Burst(32, 600, 256, 0.0), num_steady=100)
    assert text.count(f"| {LOADED} |") == 3 and text.count(f"| {QUIET} |") == 2
    assert "| interactive TTFT p95 ms | 200 | 260 | 1.30 |" in text
    assert "| interactive refused % | 5.0 | 6.0 | 1.0 points |" in text
