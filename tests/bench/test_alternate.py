"""`laneway bench alternate`: paths parsed, ratios to the first path round by round, and a
real worker and two gateways (one on each wire) taking turns."""

from __future__ import annotations

import pytest

from laneway.bench.alternate import Level, Target, parse_path, summarize
from laneway.bench.serve_stats import StreamSample, summarize_level
from laneway.cli import main
from tests.support.processes import start_gateway, start_worker


def test_paths_name_a_url_and_maybe_a_process():
    assert parse_path("direct=grpc://127.0.0.1:5") == Target("direct", "grpc://127.0.0.1:5")
    assert parse_path("gw=http://h:8000@42") == Target("gw", "http://h:8000", 42)
    for bad, needle in (("nourl", "NAME=URL"), ("x=ftp://h", "grpc:// or http://"), ("x=http://h@me", "number")):
        with pytest.raises(ValueError, match=needle):
            parse_path(bad)


def _level(name: str, tok_s: float, cpu: float | None) -> Level:
    # 10 tokens over 1 s of wall for tok_s 10: wall = 10 / tok_s; gaps of 20 ms, two of 60 (10%)
    sample = StreamSample(ttft_s=0.1, first_token_s=0.1, last_token_s=0.5, output_tokens=10,
                          gaps_s=(0.02,) * 18 + (0.06,) * 2)
    return Level(summarize_level(name, 4, [sample], {}, 10 / tok_s), cpu)


def test_each_path_is_judged_against_the_first_in_the_same_round():
    levels = {"a": [_level("a", 100, None), _level("a", 50, None)],
              "b": [_level("b", 90, 80e-6), _level("b", 55, 100e-6)]}
    text = summarize(levels)
    assert "| a | 75.0 | 1.000 / 1.000 | 1.000 | 100 / 100 | 60 | – |" in text
    assert "| b | 72.5 | 0.900 / 1.100 | 1.000 | 100 / 100 | 60 | 90 |" in text


@pytest.mark.integration
def test_a_worker_and_its_gateways_on_both_wires_take_turns(tmp_path, capsys):
    worker = start_worker(tmp_path)
    gateways = []
    try:
        gateways = [start_gateway(tmp_path, [worker]),
                    start_gateway(tmp_path, [worker], "--worker-calls", "per-stream", name="per-stream")]
        pids = [g.popen.pid for g in gateways if g.popen is not None]
        code = main(["bench", "alternate", "--model", "tiny", "--concurrency", "2", "--rounds", "2",
                     "--output-len", "8", "--path", f"direct=grpc://{worker.address}",
                     "--path", f"session=http://{gateways[0].address}@{pids[0]}",
                     "--path", f"per-stream=http://{gateways[1].address}@{pids[1]}"])
    finally:
        for proc in (*gateways, worker):
            proc.stop()
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| path")}
    assert set(rows) == {"direct", "session", "per-stream"}
    for name, cells in rows.items():
        assert float(cells[1]) > 0 and len(cells[2].split(" / ")) == 2, cells  # tok/s, a ratio per round
        assert float(cells[5]) > 0, cells  # gap p95 between arrivals
        assert (cells[6] == "–") == (name == "direct"), cells  # CPU read where a process id was given
    assert "failed" not in out
