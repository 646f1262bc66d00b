"""`laneway bench serve`: per-level numbers, medians of rounds, the gateway overhead line."""

from __future__ import annotations

import pytest

from laneway.bench.serve_drive import Shape
from laneway.bench.serve_report import DIRECT, LANEWAY, ServeReport, gateway_overhead, render, write_section
from laneway.bench.serve_stats import StreamSample, median_of_runs, summarize_level


def _sample(ttft: float, last: float, tokens: int = 11) -> StreamSample:
    return StreamSample(ttft_s=ttft, first_token_s=ttft, last_token_s=last, output_tokens=tokens)


def test_decode_rate_excludes_the_first_token_and_ttft():
    assert _sample(0.5, 1.5, tokens=11).decode_tok_s == pytest.approx(10.0)
    assert _sample(0.5, 0.5, tokens=1).decode_tok_s is None  # one token: no rate


def test_level_aggregate_counts_every_token_over_wall_time():
    level = summarize_level("x", 2, [_sample(0.1, 1.1), _sample(0.3, 2.3)], {"HTTP 429 queue-full": 1}, wall_s=4.0)
    assert level.aggregate_tok_s == pytest.approx(22 / 4.0)
    assert level.per_stream_tok_s == pytest.approx((10.0 + 5.0) / 2)
    assert level.ttft_p50_s == pytest.approx(0.1) and level.ttft_p95_s == pytest.approx(0.3)
    assert level.num_requests == 3 and level.num_failed == 1
    assert level.failures == {"HTTP 429 queue-full": 1}


def test_median_of_rounds_takes_each_number_on_its_own():
    rounds = ((0.1, 2.0), (0.3, 1.0), (0.2, 4.0))
    runs = [summarize_level("x", 1, [_sample(t, t + 1.0)], {}, wall) for t, wall in rounds]
    med = median_of_runs(runs)
    assert med.ttft_p50_s == pytest.approx(0.2)
    assert med.aggregate_tok_s == pytest.approx(11 / 2.0)
    assert med.num_requests == 3


def test_gateway_overhead_is_the_difference_to_direct_grpc():
    gw = summarize_level(LANEWAY, 1, [_sample(0.012, 1.012)], {}, 1.0)  # 10 tok/s
    direct = summarize_level(DIRECT, 1, [_sample(0.010, 0.919)], {}, 1.0)  # 11 tok/s
    over = gateway_overhead([gw, direct])
    assert over is not None
    assert over["ttft_p50_ms"] == pytest.approx(2.0)
    assert over["per_token_pct"] == pytest.approx(10.0, rel=1e-2)  # 0.1 s vs 0.0909 s per token


def test_render_replaces_only_its_section(tmp_path):
    level = summarize_level(LANEWAY, 1, [_sample(0.1, 1.1)], {}, 1.2)
    report = ServeReport(command="laneway bench serve", machine="m", versions="v", shape="s", results=[level],
                         engine_rates={"2 threads": 60.0}, num_repeats=3)
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\nkeep me\n")
    write_section(doc, render(report))
    write_section(doc, render(report))  # idempotent: one section, the rest kept
    text = doc.read_text()
    assert text.count("bench:serve:start") == 1 and "keep me" in text
    assert "| 10.0 |" in text and "60.0" in text


def test_prompts_have_the_asked_length_and_differ_per_request():
    shape = Shape(prompt_len=32, output_len=8)
    a, b = shape.prompt_ids(0), shape.prompt_ids(1)
    assert len(a) == 32 and a != b and all(3 <= t < 256 for t in a + b)
