"""`laneway bench serve` end to end on the tiny preset: real worker and gateway processes."""

from __future__ import annotations

import pytest

from laneway.bench.serve_report import DIRECT, END, ENGINE, LANEWAY, LANEWAY_PER_STREAM, START
from laneway.cli import main

pytestmark = pytest.mark.integration


def test_serves_the_exported_preset_and_writes_its_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nother sections stay\n")
    code = main(["bench", "serve", "--model", "tiny", "--concurrency", "1,2", "--repeats", "1",
                 "--requests-per-stream", "1", "--output-len", "8", "--overhead-requests", "2",
                 "--per-stream-gateway", "--work-dir", str(tmp_path / "w"),
                 "--out", str(doc), str(tmp_path / "run.json")])
    assert code == 0
    assert (tmp_path / "w" / "hf-tiny" / "tokenizer.json").exists()  # every system reads the same export
    text = doc.read_text()
    assert "other sections stay" in text and START in text and END in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| Laneway")}
    per_stream = []
    for system in (DIRECT, LANEWAY, LANEWAY_PER_STREAM):
        cells = rows[system].strip("| ").split(" | ")  # system, then per level: per-stream, aggregate, TTFT
        assert float(cells[2]) > 0 and float(cells[5]) > 0, rows[system]  # aggregate tok/s at c=1 and c=2
        assert "failed" not in rows[system]
        # A stream's decode rate needs two arrivals. The tiny model makes 8 tokens in a few ms;
        # when the worker's loop wakes after they are all queued, they leave as one message
        # (workers/stream_coalesce.py), and the cell shows "–" for no rate.
        for cell in (cells[1], cells[4]):
            assert cell == "–" or float(cell) > 0, rows[system]
            per_stream += [float(cell)] if cell != "–" else []
    assert per_stream, "no stream of either system arrived in two messages or more"
    assert (tmp_path / "run.json").exists()
    # The gateway's overhead from requests taking turns, its A/A noise floor, and its process's CPU time
    assert "taking turns" in text and "Noise floor" in text and "CPU time of the `Laneway (gateway" in text
    # The in-process engine ran twice: its own stretch (the table's row) and its turns beside the served paths
    assert any(line.startswith(f"| {ENGINE}, batch 1") for line in text.splitlines())
    assert "Served c=1 against the worker's engine driven in-process" in text
    # Both wires' gateway CPU per output token, at every level of the table
    (cpu_line,) = [line for line in text.splitlines() if "per output token in the table's levels" in line]
    for level in ("c=1: ", "c=2: "):
        part = cpu_line.split(level)[1].split(";")[0]
        assert f"`{LANEWAY}` " in part and f"`{LANEWAY_PER_STREAM}` " in part, cpu_line
