"""`laneway bench serve`: per-level numbers, medians of rounds, the gateway overhead line."""

from __future__ import annotations

import pytest

from laneway.bench.serve_drive import OPENAI, Shape, llamacpp_dialect, request_body, usage_problem
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
    assert over["tpot_p50_ms"] == pytest.approx(100.0 - 90.9, rel=1e-2)


def test_gateway_overhead_p99_comes_from_the_slow_requests():
    fast = [_sample(0.010, 0.010 + 1.0) for _ in range(98)]  # 10 tok/s: 100 ms per token
    slow = [_sample(0.030, 0.030 + 2.0)] * 2  # 200 ms per token: p99 (nearest rank) of 100 is one of them
    gw = summarize_level(LANEWAY, 1, fast + slow, {}, 1.0)
    direct = summarize_level(DIRECT, 1, [_sample(0.010, 1.010) for _ in range(100)], {}, 1.0)
    over = gateway_overhead([gw, direct])
    assert over is not None
    assert over["ttft_p50_ms"] == pytest.approx(0.0, abs=1e-9) and over["ttft_p99_ms"] > 0
    assert over["tpot_p50_ms"] == pytest.approx(0.0, abs=1e-9) and over["tpot_p99_ms"] > 0
    assert over["num_requests"] == 100


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


def _bytes(text: str) -> list[int]:
    return [3 + b for b in text.encode()]


def test_prompts_have_the_asked_length_and_differ_per_request():
    shape = Shape(prompt_len=32, output_len=8, encode=_bytes)
    a, b = shape.prompt_ids(0), shape.prompt_ids(1)
    assert len(a) == 32 and a != b
    assert shape.prompt_text(0).isascii() and " " not in shape.prompt_text(0)


def test_prompt_ids_refuse_a_tokenizer_that_merges_the_prompt():
    shape = Shape(prompt_len=8, output_len=8, encode=lambda text: _bytes(text)[:-1])
    with pytest.raises(ValueError, match="7 tokens"):
        shape.prompt_ids(0)


def test_exported_tokenizer_reads_every_prompt_one_token_per_character(tmp_path):
    from laneway.bench.hf_export import _write_tokenizer
    from laneway.bench.serve_drive import hf_encoder

    _write_tokenizer(tmp_path, 320)  # trained on a corpus whose merges a prompt must not hit
    shape = Shape(prompt_len=32, output_len=8, encode=hf_encoder(str(tmp_path)))
    for index in range(200):
        assert len(shape.prompt_ids(index)) == 32


def test_llamacpp_gets_text_greedy_and_eos_biased_away():
    shape = Shape(prompt_len=8, output_len=16, encode=_bytes)
    body = request_body("bench", shape, 3, llamacpp_dialect(eos_token_id=2, non_ascii_byte_ids=[200, 201]))
    assert body["prompt"] == shape.prompt_text(3) and body["max_tokens"] == 16 and body["temperature"] == 0.0
    assert body["repeat_penalty"] == 1.0 and body["logit_bias"] == {"2": -1e9, "200": -1e9, "201": -1e9}
    assert "ignore_eos" not in body
    openai = request_body("bench", shape, 3, OPENAI)
    assert openai["prompt"] == shape.prompt_ids(3) and openai["ignore_eos"] is True


def test_a_server_that_stops_early_or_reads_another_prompt_length_is_caught():
    shape = Shape(prompt_len=8, output_len=16, encode=_bytes)
    assert usage_problem({"prompt_tokens": 8, "completion_tokens": 16}, shape) is None
    assert usage_problem({"prompt_tokens": 8, "completion_tokens": 5}, shape) == "5 of 16 tokens"
    assert "9 tokens" in (usage_problem({"prompt_tokens": 9, "completion_tokens": 16}, shape) or "")


def test_render_takes_the_overhead_from_the_interleaved_turns_with_its_noise_floor():
    from laneway.bench.serve_report import DIRECT_AGAIN

    table = [summarize_level(s, 1, [_sample(t, t + 1.0)], {}, 1.0) for s, t in ((LANEWAY, 0.5), (DIRECT, 0.1))]
    turns = [summarize_level(s, 1, [_sample(t, t + 1.0)], {}, 1.0)
             for s, t in ((DIRECT, 0.010), (LANEWAY, 0.0125), (DIRECT_AGAIN, 0.0101))]
    report = ServeReport(command="c", machine="m", versions="v", shape="s", results=table, engine_rates={},
                         num_repeats=1, overhead=turns, overhead_requests=7, overhead_cpu_s={LANEWAY: 0.011},
                         output_len=11)
    text = render(report)
    assert "TTFT p50 +2.50 ms" in text and "+400" not in text  # from the turns, not the table's c=1 rows
    assert "7 per path and round" in text
    assert "Noise floor" in text and "TTFT p50 +0.10 ms" in text
    # 11 ms over 11 tokens: 1000 us per token, 1% of direct's 100 ms per token
    assert "11.00 ms (1000 us per output token; 1.0% of direct gRPC's per-token time p50)" in text


def test_served_paths_are_judged_against_the_engine_that_took_the_same_turns():
    from laneway.bench.serve_report import ENGINE_TURNS, against_engine

    turns = [summarize_level(s, 1, [_sample(0.01, 0.01 + span)], {}, 1.0)
             for s, span in ((ENGINE_TURNS, 1.0), (LANEWAY, 1.25), (DIRECT, 1.1))]  # 10 tok/s, 8, 9.09
    assert [(name, round(rate, 2), round(ratio, 3)) for name, rate, ratio in against_engine(turns)] == [
        (LANEWAY, 8.0, 0.8), (DIRECT, 9.09, 0.909)]
    assert against_engine(turns[1:]) == []  # no engine turn: nothing to judge against
    report = ServeReport(command="c", machine="m", versions="v", shape="s", results=[], engine_rates={},
                         num_repeats=1, overhead=turns, overhead_requests=3)
    text = render(report)
    assert "engine 10.0; `Laneway (gateway + worker)` 8.0 (0.80x); `Laneway worker, direct gRPC (no gateway)` " \
           "9.1 (0.91x). The engine's TTFT p50 (from adding the request to its first token): 10.00 ms." in text


def test_served_paths_are_judged_against_the_peers_that_took_the_same_turns():
    from laneway.bench.serve_report import LLAMACPP, VLLM, against_peers

    turns = [summarize_level(s, 1, [_sample(0.01, 0.01 + span)], {}, 1.0)  # 10 tok/s over 1 s, 8 over 1.25 s
             for s, span in ((LANEWAY, 1.0), (DIRECT, 1.1), (VLLM, 2.0), (LLAMACPP, 1.25))]
    assert [(name, round(rate, 2), [(peer, round(x, 3)) for peer, x in ratios])
            for name, rate, ratios in against_peers(turns)] == [
        (LANEWAY, 10.0, [(LLAMACPP, 1.25), (VLLM, 2.0)]), (DIRECT, 9.09, [(LLAMACPP, 1.136), (VLLM, 1.818)])]
    assert against_peers(turns[:2]) == []  # no peer took the turns: nothing to judge against
    report = ServeReport(command="c", machine="m", versions="v", shape="s", results=[], engine_rates={},
                         num_repeats=1, overhead=turns, overhead_requests=3)
    text = render(report)
    assert (f"decode tok/s per stream, {LLAMACPP} 8.0, {VLLM} 5.0; `{LANEWAY}` 10.0 (1.25x {LLAMACPP}, "
            f"2.00x {VLLM}); `{DIRECT}` 9.1 (1.14x {LLAMACPP}, 1.82x {VLLM}).") in text


def test_non_ascii_byte_tokens_are_found_in_the_exported_tokenizer(tmp_path):
    from tokenizers import Tokenizer

    from laneway.bench.hf_export import _write_tokenizer
    from laneway.bench.serve_drive import non_ascii_byte_ids

    _write_tokenizer(tmp_path, 320)
    ids = non_ascii_byte_ids(str(tmp_path))
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert len(ids) == 128
    assert tokenizer.encode("é", add_special_tokens=False).ids[0] in ids  # 0xC3 0xA9: both bytes non-ASCII
    assert not set(tokenizer.encode("az09!~", add_special_tokens=False).ids) & set(ids)


def test_render_gives_each_gateways_cpu_per_token_at_each_level():
    from laneway.bench.serve_report import LANEWAY_PER_STREAM

    table = [summarize_level(s, c, [_sample(0.1, 1.1)], {}, 1.0)
             for s in (LANEWAY, LANEWAY_PER_STREAM) for c in (1, 32)]
    cpu = {(LANEWAY, 1): 250e-6, (LANEWAY_PER_STREAM, 1): 260e-6,
           (LANEWAY, 32): 90e-6, (LANEWAY_PER_STREAM, 32): 130e-6}
    report = ServeReport(command="c", machine="m", versions="v", shape="s", results=table, engine_rates={},
                         num_repeats=1, level_cpu_s_per_token=cpu)
    text = render(report)
    assert (f"c=1: `{LANEWAY}` 250, `{LANEWAY_PER_STREAM}` 260; c=32: `{LANEWAY}` 90, `{LANEWAY_PER_STREAM}` 130."
            in text)


def test_gap_p95_is_over_every_arrival_gap_of_the_level():
    calm = StreamSample(ttft_s=0.1, first_token_s=0.1, last_token_s=1.0, output_tokens=10, gaps_s=(0.01,) * 90)
    jolted = StreamSample(ttft_s=0.1, first_token_s=0.1, last_token_s=1.0, output_tokens=10, gaps_s=(0.5,) * 10)
    level = summarize_level("x", 2, [calm, jolted], {}, 1.0)
    assert level.gap_p95_s == pytest.approx(0.5)  # 10 of 100 gaps are long: the p95 is one of them
    assert summarize_level("x", 1, [calm], {}, 1.0).gap_p95_s == pytest.approx(0.01)
    assert median_of_runs([level, summarize_level("x", 1, [calm], {}, 1.0)]).gap_p95_s == pytest.approx(0.255)
