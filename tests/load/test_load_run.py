"""`laneway load` against a fake OpenAI server: exact counts, statuses, open loop, percentiles."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from laneway.cli import main as laneway_main
from laneway.load.arrivals import Burst, Poisson
from laneway.load.closed_loop import run_closed_loop, split_users
from laneway.load.fake_server import FakeBehaviour, FakeServer
from laneway.load.open_loop import Target, run_open_loop
from laneway.load.report import summaries
from laneway.load.workload import Budget
from tests.load.fake import endpoint, make_workload

REFUSE_B = FakeBehaviour(ttft_s=0.01, tbt_s=0.002, status_by_path=(("/endpoints/b/", 429),))


@pytest.mark.parametrize("fake_server", [REFUSE_B], indirect=True)
def test_counts_exactly_what_it_sent_per_endpoint_and_status(fake_server: FakeServer) -> None:
    w = make_workload(endpoint("a", Poisson(40), output=5), endpoint("b", Poisson(20)),
                      endpoint("c", Burst(0.5, 4), output=3, stream=False), duration_s=1.0)
    plan = w.requests()
    run = asyncio.run(run_open_loop(Target(fake_server.url), w, plan))
    received = fake_server.state.received
    for name in ("a", "b", "c"):
        planned = sum(1 for r in plan if r.endpoint == name)
        assert received[f"/v1/endpoints/{name}/completions"] == planned
        assert sum(1 for r in run.results if r.endpoint == name) == planned
    rows = {s.endpoint: s for s in summaries(run, {})}
    assert rows["a"].status_counts == {"200": rows["a"].sent} and rows["a"].completed == rows["a"].sent
    assert rows["b"].status_counts == {"429": rows["b"].sent} and rows["b"].refused == rows["b"].sent
    assert rows["c"].completed == rows["c"].sent == 8 and rows["c"].ttft_p50_ms is None  # not streamed
    assert all(r.output_tokens == 5 for r in run.results if r.endpoint == "a")


@pytest.mark.parametrize("fake_server", [FakeBehaviour(ttft_s=2.0)], indirect=True)
def test_open_loop_never_waits_for_earlier_requests(fake_server: FakeServer) -> None:
    """20 requests due at once against a server that takes 2 s to answer each: all 20 must
    be in the server together, i.e. none waited for another."""
    w = make_workload(endpoint("slow", Burst(100.0, 20), output=1), duration_s=1.0)
    run = asyncio.run(run_open_loop(Target(fake_server.url), w, w.requests()))
    assert fake_server.state.max_in_flight == 20
    assert all(r.ok for r in run.results)


def test_percentiles_match_a_reference_implementation(fake_server: FakeServer) -> None:
    w = make_workload(endpoint("a", Poisson(30), output=6), duration_s=1.5, api="chat")
    run = asyncio.run(run_open_loop(Target(fake_server.url), w, w.requests()))
    [row] = summaries(run, {"a": Budget(ttft_p95_ms=10_000)})
    ok = [r for r in run.results if r.ok]
    ttft = np.array([r.ttft_s for r in ok]) * 1e3
    tbt = np.array([g for r in ok for g in r.tbt_s]) * 1e3
    ref = lambda a, q: float(np.percentile(a, q, method="inverted_cdf"))  # noqa: E731  # nearest rank
    assert row.ttft_p50_ms == pytest.approx(ref(ttft, 50)) and row.ttft_p95_ms == pytest.approx(ref(ttft, 95))
    assert row.ttft_p99_ms == pytest.approx(ref(ttft, 99)) and row.tbt_p95_ms == pytest.approx(ref(tbt, 95))
    assert row.output_tokens_per_s == pytest.approx(6 * len(ok) / run.elapsed_s)
    assert len(tbt) == 5 * len(ok)  # six streamed chunks, five gaps each


def test_closed_loop_holds_its_concurrency(fake_server: FakeServer) -> None:
    w = make_workload(endpoint("a", Poisson(3)), endpoint("b", Poisson(1)), duration_s=0.8)
    assert split_users(w, 4) == {"a": 3, "b": 1}
    assert split_users(w, 1) == {"a": 1, "b": 1}  # every endpoint gets a user
    run = asyncio.run(run_closed_loop(Target(fake_server.url), w, 4))
    assert 0 < fake_server.state.max_in_flight <= 4
    assert sum(fake_server.state.received.values()) == len(run.results)
    assert all(r.ok for r in run.results)


def test_load_command_writes_table_json_and_plot(fake_server: FakeServer, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    wl = tmp_path / "w.yaml"
    wl.write_text("duration_s: 1\napi: completions\nendpoints:\n"
                  "  a: {arrival: {rate: 20}, prompt_tokens: 8, output_tokens: 4, slo: {ttft_p95_ms: 5000}}\n")
    code = laneway_main(["load", str(wl), "--url", fake_server.url, "--json", str(tmp_path / "r.json"),
                         "--plot", str(tmp_path / "r.png"), "--quiet"])
    assert code == 0
    out = capsys.readouterr()
    assert "| a |" in out.out and "holds" in out.out
    data = json.loads((tmp_path / "r.json").read_text())
    [ep] = data["runs"][0]["endpoints"]
    assert ep["sent"] == fake_server.state.received["/v1/endpoints/a/completions"] and ep["verdict"] == "holds"
    assert data["runs"][0]["send_lag_ms"]["p99"] is not None
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_marks_where_the_budget_breaks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A server that holds 0.3 s per request, budget 0.2 s TTFT: every rate breaks at the
    first point; budget of 1 s: holds throughout."""
    server = FakeServer(FakeBehaviour(ttft_s=0.3)).start()
    try:
        wl = tmp_path / "w.yaml"
        wl.write_text("duration_s: 0.5\napi: completions\nendpoints:\n"
                      "  tight: {arrival: {rate: 10}, prompt_tokens: 8, output_tokens: 2, slo: {ttft_p95_ms: 200}}\n"
                      "  loose: {arrival: {rate: 10}, prompt_tokens: 8, output_tokens: 2, slo: {ttft_p95_ms: 5000}}\n")
        code = laneway_main(["load", str(wl), "--url", server.url, "--sweep", "rate=1,2", "--quiet",
                             "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png")])
    finally:
        server.stop()
    assert code == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["breaks_at"] == {"tight": 1.0, "loose": None}
    assert len(data["runs"]) == 2
    assert "budget breaks here" in capsys.readouterr().out
    assert (tmp_path / "s.png").stat().st_size > 0


def test_concurrency_sweep_runs_closed_loops(fake_server: FakeServer, tmp_path: Path) -> None:
    wl = tmp_path / "w.yaml"
    wl.write_text("duration_s: 0.4\napi: chat\nendpoints:\n"
                  "  a: {arrival: {rate: 1}, prompt_tokens: 8, output_tokens: 2}\n")
    code = laneway_main(["load", str(wl), "--url", fake_server.url, "--sweep", "concurrency=1,3", "--quiet",
                         "--json", str(tmp_path / "c.json")])
    assert code == 0
    data = json.loads((tmp_path / "c.json").read_text())
    assert [r["sweep"]["value"] for r in data["runs"]] == [1.0, 3.0]
    sent = sum(e["sent"] for r in data["runs"] for e in r["endpoints"])
    assert sent == fake_server.state.received["/v1/endpoints/a/chat/completions"] > 0
    assert fake_server.state.max_in_flight <= 3
