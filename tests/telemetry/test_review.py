"""`laneway review`: percentiles checked against numpy, verdicts against the policy's budgets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from laneway.cli import main
from telemetry import attributes as attr
from tests.telemetry.trace_factory import Req, write_trace


def _review(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["review", *args])
    return code, capsys.readouterr().out


def _rows(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict]:
    code, out = _review(capsys, *args, "--format", "json")
    assert code in (0, 1), out
    return {r["endpoint"]: r for r in json.loads(out)["runs"][-1]["rows"]}


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q, method="inverted_cdf"))  # nearest rank


def test_percentiles_match_a_direct_computation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    reqs = [Req("support-draft", "streaming", start_s=i * 0.5, ttft_ms=rng.uniform(20, 900),
                queue_wait_ms=rng.uniform(0, 40), tbt_p95_ms=rng.uniform(5, 140), output_tokens=rng.randint(1, 50),
                duration_s=rng.uniform(0.5, 3.0), window_ms=10.0) for i in range(97)]
    reqs += [Req("support-draft", "streaming", start_s=10.0, ttft_ms=None, queue_wait_ms=None, tbt_p95_ms=None,
                 output_tokens=0, outcome=attr.REFUSED, reject_reason="budget", window_ms=None),
             Req("support-draft", "streaming", start_s=11.0, ttft_ms=None, queue_wait_ms=None, tbt_p95_ms=None,
                 output_tokens=0, outcome=attr.CANCELLED, window_ms=None)]
    row = _rows(capsys, str(write_trace(tmp_path / "run.jsonl", reqs)))["support-draft"]
    served = reqs[:97]
    ttfts = [r.ttft_ms for r in served]
    waits = [r.queue_wait_ms for r in served]
    assert row["num_requests"] == 99 and row["num_refused"] == 1 and row["num_cancelled"] == 1
    assert row["ttft_p50_ms"] == pytest.approx(_p(ttfts, 50))
    assert row["ttft_p95_ms"] == pytest.approx(_p(ttfts, 95))
    assert row["ttft_p99_ms"] == pytest.approx(_p(ttfts, 99))
    assert row["queue_p50_ms"] == pytest.approx(_p(waits, 50))
    assert row["queue_p95_ms"] == pytest.approx(_p(waits, 95))
    assert row["tbt_p95_ms"] == pytest.approx(_p([r.tbt_p95_ms for r in served], 95))
    span_s = max(r.start_s + r.duration_s for r in served) - min(r.start_s for r in served)
    assert row["tokens_per_s"] == pytest.approx(sum(r.output_tokens for r in served) / span_s)
    assert row["window"] == "10 ms"


def test_verdicts_against_the_policy_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # inline-completion: TTFT budget 300 ms; 20 requests at 100 ms and 2 at 350 ms: p95 is 350.
    reqs = [Req("inline-completion", "interactive", start_s=i, ttft_ms=350.0 if i in (5, 15) else 100.0)
            for i in range(22)]
    reqs += [Req("support-draft", "streaming", start_s=i, ttft_ms=400.0, tbt_p95_ms=20.0) for i in range(5)]
    reqs += [Req("chat", "streaming", start_s=i, ttft_ms=100.0, tbt_p95_ms=130.0) for i in range(5)]  # TBT 100
    reqs += [Req("nightly-labeling", "bulk", start_s=i, ttft_ms=9000.0) for i in range(5)]
    path = str(write_trace(tmp_path / "run.jsonl", reqs))
    rows = _rows(capsys, path)
    assert rows["inline-completion"]["verdict"] == "over budget by 50 ms (TTFT p95)"
    assert rows["inline-completion"]["over_budget_ms"] == pytest.approx(50.0)
    assert rows["support-draft"]["verdict"] == "within budget"
    assert rows["chat"]["verdict"] == "over budget by 30 ms (TBT p95)"
    assert rows["nightly-labeling"]["verdict"] == "no budget"
    code, table = _review(capsys, path)
    assert code == 1  # something is over budget
    line = next(ln for ln in table.splitlines() if ln.startswith("inline-completion"))
    assert "350 ms" in line and "over budget by 50 ms" in line


def test_the_first_degrading_signal_is_queue_wait_rising(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    # Same tokens/s throughout; in the second half the lane queue grows and TTFT follows.
    reqs = [Req("inline-completion", "interactive", start_s=i, queue_wait_ms=5.0 if i < 10 else 250.0,
                ttft_ms=60.0 if i < 10 else 320.0) for i in range(20)]
    row = _rows(capsys, str(write_trace(tmp_path / "run.jsonl", reqs)))["inline-completion"]
    assert row["degrading_signal"].startswith("queue wait rising: p95 5.0 -> 250 ms while tokens/s held")


def test_ttft_rising_with_a_flat_queue_points_at_the_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    reqs = [Req("inline-completion", "interactive", start_s=i, queue_wait_ms=5.0,
                ttft_ms=60.0 if i < 10 else 400.0) for i in range(20)]
    row = _rows(capsys, str(write_trace(tmp_path / "run.jsonl", reqs)))["inline-completion"]
    assert row["degrading_signal"].startswith("TTFT rising with queue wait flat")


def test_within_budget_has_no_signal_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write_trace(tmp_path / "run.jsonl", [Req("inline-completion", "interactive", start_s=i)
                                                    for i in range(5)]))
    assert _rows(capsys, path)["inline-completion"]["degrading_signal"] is None
    assert _review(capsys, path)[0] == 0


def test_compare_shows_two_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = write_trace(tmp_path / "a" / "run.jsonl", [Req("inline-completion", "interactive", start_s=i,
                                                            ttft_ms=240.0, window_ms=25.0) for i in range(5)])
    after = write_trace(tmp_path / "b" / "run.jsonl", [Req("inline-completion", "interactive", start_s=i,
                                                           ttft_ms=120.0) for i in range(5)])
    code, out = _review(capsys, str(before), "--compare", str(after), "--format", "markdown")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("| inline-completion"))
    assert "25 ms -> 2 ms" in line and "240 ms -> 120 ms (-120)" in line
    code, out = _review(capsys, str(before), "--compare", str(after), "--format", "json")
    assert json.loads(out)["compare"][0]["TTFT p95"] == "240 ms -> 120 ms (-120)"


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_trace(tmp_path / "run.jsonl", [Req("inline-completion", "interactive", start_s=i,
                                                    ttft_ms=float(10 * i)) for i in range(30)])
    out = tmp_path / "ttft.png"
    assert _review(capsys, str(path), "--plot", str(out))[0] == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unreadable_input_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["review", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
