"""Workload YAML: every form reads, every mistake names file, field and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from laneway.load.arrivals import Burst, Poisson, Trace
from laneway.load.lengths import Fixed, LogNormal, Uniform
from laneway.load.workload_file import WorkloadError, load_workload, parse_workload

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str, base: Path = Path(".")):
    return parse_workload(yaml.safe_load(text), "w.yaml", base)


def test_every_form_reads() -> None:
    w = parse("""
duration_s: 10
seed: 3
api: chat
endpoints:
  a: {arrival: {rate: 2}, prompt_tokens: 32, output_tokens: {uniform: [4, 8]}, slo: {ttft_p95_ms: 300}}
  b:
    arrival: {burst: {every_s: 2.5, size: 3}}
    prompt_tokens: {lognormal: {mean: 100, sigma: 0.5, min: 10, max: 400}}
    output_tokens: {fixed: 5}
    stream: false
    shared_prefix: {share: 0.5, tokens: 20}
  /v1/chat/completions: {arrival: {poisson: {rate: 1}}, prompt_tokens: 8, output_tokens: 8}
""")
    a, b, c = w.endpoints
    assert a.arrival == Poisson(2.0) and a.prompt_tokens == Fixed(32) and a.output_tokens == Uniform(4, 8)
    assert a.budget.ttft_p95_ms == 300 and a.path("chat") == "/v1/endpoints/a/chat/completions"
    assert b.arrival == Burst(2.5, 3) and b.prompt_tokens == LogNormal(100, 0.5, 10, 400) and not b.stream
    assert c.is_url_path and c.path("completions") == "/v1/chat/completions" and c.api_of("completions") == "chat"


def test_requests_are_deterministic_and_follow_the_arrivals() -> None:
    w = parse("""
duration_s: 10
endpoints:
  a: {arrival: {rate: 5}, prompt_tokens: 30, output_tokens: 4, shared_prefix: {share: 0.5, tokens: 20}}
  b: {arrival: {burst: {every_s: 2.5, size: 3}}, prompt_tokens: 8, output_tokens: 2}
""")
    reqs = w.requests()
    assert reqs == w.requests()
    assert [r.at_s for r in reqs if r.endpoint == "b"] == [0.0] * 3 + [2.5] * 3 + [5.0] * 3 + [7.5] * 3
    a = [r for r in reqs if r.endpoint == "a"]
    assert 25 < len(a) < 80  # Poisson, 5/s over 10 s
    assert {r.shared_prefix_tokens for r in a} == {0, 20}
    assert [r.index for r in reqs] == list(range(len(reqs)))
    doubled = w.requests(scale=2.0)
    assert len([r for r in doubled if r.endpoint == "b"]) == 24  # bursts twice as often


def test_trace_arrivals_replay_their_lines(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("# time endpoint prompt max\n0.5 a 100 10\n0.1, a, 50, 5\n9 b 1 1\n20 a 7 7\n")
    w = parse("duration_s: 10\nendpoints:\n  a: {arrival: {trace: t.txt}}\n", tmp_path)
    assert isinstance(w.endpoints[0].arrival, Trace)
    assert [(r.at_s, r.prompt_tokens, r.max_tokens) for r in w.requests()] == [(0.1, 50, 5), (0.5, 100, 10)]
    assert [(r.at_s, r.prompt_tokens) for r in w.requests(scale=4.0)] == [(0.025, 50), (0.125, 100), (5.0, 7)]


@pytest.mark.parametrize(("text", "message"), [
    ("endpoints: {}", "at least one endpoint"),
    ("endpoints: {a: {prompt_tokens: 3, output_tokens: 3}}", "endpoints.a: missing field 'arrival'"),
    ("endpoints: {a: {arrival: {rate: 1}, output_tokens: 3}}", "missing field 'prompt_tokens'"),
    ("endpoints: {a: {arrival: {rate: -1}, prompt_tokens: 3, output_tokens: 3}}", "endpoints.a.arrival.rate"),
    ("endpoints: {a: {arrival: {poisson: 1}, prompt_tokens: 3, output_tokens: 3}}", "endpoints.a.arrival.poisson"),
    ("endpoints: {a: {arrival: {rate: 1}, prompt_tokens: {uniform: [9, 3]}, output_tokens: 3}}", "low <= high"),
    ("endpoints: {a: {arrival: {rate: 1}, prompt_tokens: {lognormal: {mean: 5}}, output_tokens: 3}}", "sigma"),
    ("endpoints: {a: {arrival: {rate: 1}, prompt_tokens: 3, output_tokens: 3, color: red}}", "unknown field 'color'"),
    ("endpoints: {a: {arrival: {trace: missing.txt}}}", "cannot read"),
    ("api: grpc\nendpoints: {a: {arrival: {rate: 1}, prompt_tokens: 3, output_tokens: 3}}", "chat or completions"),
    ("endpoints: {a: {arrival: {rate: 1}, prompt_tokens: 3, output_tokens: 3, shared_prefix: {share: 2, tokens: 3}}}",
     "fraction"),
])
def test_mistakes_name_the_file_and_field(text: str, message: str) -> None:
    with pytest.raises(WorkloadError, match="w.yaml") as err:
        parse(text)
    assert message in str(err.value)


def test_example_workloads_load() -> None:
    for f in (ROOT / "laneway/load/examples").glob("*.yaml"):
        w = load_workload(f)
        assert w.requests(), f


def test_scaled_workload_draws_what_a_scaled_run_draws() -> None:
    w = parse("duration_s: 10\nendpoints:\n  a: {arrival: {rate: 3}, prompt_tokens: 8, output_tokens: 2}\n"
              "  b: {arrival: {burst: {every_s: 4, size: 2, start_s: 1}}, prompt_tokens: 8, output_tokens: 2}\n")
    assert w.scaled(2.5).requests() == w.requests(scale=2.5)
    assert w.scaled(2.0).endpoint("a").arrival.mean_rate == 6.0
