"""`laneway bench tenants`: the quiet tenant's ratios, the noisy tenant's rate, the batches' progress."""

from __future__ import annotations

import pytest

from laneway.bench.tenants_report import (
    ALONE,
    LaneRun,
    Sample,
    batch_outcome,
    expected_small_share,
    lane_verdicts,
    quiet_ratio,
    render_batch_markdown,
    render_lane_markdown,
    tokens_per_s_in_window,
)
from laneway.load.client import RequestResult
from laneway.load.stats import EndpointSummary


def summary(name: str, *, p50: float | None, p95: float | None, sent: int = 30) -> EndpointSummary:
    return EndpointSummary(endpoint=name, sent=sent, completed=sent, refused=0, errors=0, ttft_p50_ms=p50,
                           ttft_p95_ms=p95, ttft_p99_ms=None, tbt_p50_ms=None, tbt_p95_ms=None,
                           queue_wait_p50_ms=None, queue_wait_p95_ms=None, output_tokens_per_s=16.0,
                           goodput_rps=0.0, budget_ttft_ms=None, budget_tbt_ms=None)


def lane_runs() -> list[LaneRun]:
    return [
        LaneRun(ALONE, "tenants-fair.yaml", summary("quiet", p50=20.0, p95=40.0), None, None, 16.0),
        LaneRun("fair", "tenants-fair.yaml", summary("quiet", p50=25.0, p95=50.0),
                summary("noisy", p50=900.0, p95=2000.0), 700.0, 16.0),
        LaneRun("fcfs", "tenants-fcfs.yaml", summary("quiet", p50=1000.0, p95=2000.0),
                summary("noisy", p50=900.0, p95=2000.0), 1000.0, 16.0),
    ]


def done(finished_at: float, tokens: int) -> RequestResult:
    return RequestResult(endpoint="noisy", scheduled_at=0.0, sent_at=0.0, status=200, finished_at=finished_at,
                         output_tokens=tokens, finish_reason="length")


def test_noisy_tokens_count_only_requests_finished_inside_the_window():
    results = [done(4.9, 100), done(5.0, 128), done(9.0, 128), done(15.0, 128),
               RequestResult(endpoint="noisy", scheduled_at=0.0, sent_at=0.0, status=429, finished_at=6.0,
                             output_tokens=0, error="refused")]
    assert tokens_per_s_in_window(results, 5.0, 15.0) == pytest.approx(256 / 10.0)
    assert tokens_per_s_in_window(results, 5.0, 5.0) == 0.0


def test_quiet_ratio_divides_by_the_run_alone():
    runs = lane_runs()
    assert quiet_ratio(runs[1], runs[0]) == pytest.approx(1.25)
    assert quiet_ratio(runs[2], runs[0]) == pytest.approx(50.0)
    assert quiet_ratio(runs[2], runs[0], "ttft_p50_ms") == pytest.approx(50.0)
    unmeasured = LaneRun(ALONE, "x", summary("quiet", p50=None, p95=None), None, None, 0.0)
    assert quiet_ratio(runs[1], unmeasured) is None


def test_lane_verdicts_judge_fair_against_the_target_and_compare_noisy_rates():
    lines = lane_verdicts(lane_runs(), "fair", "fcfs")
    assert lines[0].endswith("1.25x (target <= 1.5x) -> met")
    assert "FCFS: 50.00x" in lines[1]
    assert "fair / FCFS: 0.70" in lines[2]
    slow = [lane_runs()[0], LaneRun("fair", "x", summary("quiet", p50=90.0, p95=80.0), None, None, 0.0)]
    assert lane_verdicts(slow, "fair", "fcfs")[0].endswith("2.00x (target <= 1.5x) -> MISSED")
    assert lane_verdicts(lane_runs()[1:], "fair", "fcfs") == [], "no baseline, no verdict"


def test_lane_table_has_one_row_per_run_with_its_ratio():
    table = render_lane_markdown(lane_runs())
    assert len(table) == 2 + 3
    assert "| fair | 30 / 30 | 25 / 50 | 1.25x | 1.25x |" in table[3]
    assert "| 700.0 |" in table[3] and table[2].endswith("| - / - | - / - | - | - | 16.0 |")  # alone: no noisy tenant


def test_batch_outcome_reads_first_and_last_line_and_shares_while_both_ran():
    samples = [Sample(0.0, 0, None), Sample(4.0, 40, None), Sample(5.2, 50, 0), Sample(6.0, 54, 2),
               Sample(7.0, 60, 8), Sample(8.0, 66, 16), Sample(9.0, 72, 16)]
    o = batch_outcome(samples, small_submitted_s=5.0, small_total=16)
    assert o.first_after_s == pytest.approx(1.0)
    assert o.last_after_s == pytest.approx(3.0)
    # From the last poll before the submission (t=4, 40 big lines) to the small batch's end (t=8).
    assert (o.big_lines_while_both, o.small_lines_while_both) == (26, 16)
    assert o.both_s == pytest.approx(3.0)
    assert o.small_share == pytest.approx(16 / 42)
    # From the poll before the first small line was seen (t=5.2: 50 big, 0 small) to the end.
    assert (o.big_lines_once_running, o.small_lines_once_running) == (16, 16)
    assert o.small_share_once_running == pytest.approx(0.5)


def test_a_small_batch_not_done_in_the_window_has_no_last_time_and_counts_to_the_end():
    samples = [Sample(0.0, 0, None), Sample(5.0, 10, 0), Sample(30.0, 200, 0)]
    o = batch_outcome(samples, small_submitted_s=5.0, small_total=16)
    assert o.first_after_s is None and o.last_after_s is None
    assert (o.big_lines_while_both, o.small_lines_while_both, o.small_share) == (190, 0, 0.0)
    assert o.small_share_once_running is None, "it never ran"
    empty = batch_outcome([Sample(0.0, 0, None)], small_submitted_s=5.0, small_total=16)
    assert empty.small_share is None and empty.first_after_s is None


def test_expected_share_is_the_weights_share_of_slots_capped_by_the_small_batchs_lines():
    assert expected_small_share(1.0, 1.0, 16, 8) == pytest.approx(0.5)
    assert expected_small_share(1.0, 3.0, 16, 8) == pytest.approx(0.75)
    assert expected_small_share(1.0, 1.0, 2, 8) == pytest.approx(0.25)


def test_batch_table_shows_each_gateway_count():
    o = batch_outcome([Sample(0.0, 0, None), Sample(5.0, 10, 0), Sample(6.0, 14, 16)], 5.0, 16)
    table = render_batch_markdown([("1", o, 0.5), ("2", o, 0.5)])
    assert len(table) == 4
    assert table[2] == "| 1 | 5.0 | 1.0 | 1.0 (of 16) | 4 / 16 (80%) | 4 / 16 (80%) | 50% |"
