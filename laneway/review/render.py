"""The review as a terminal table, Markdown or JSON; one run, or two side by side.

The comparison keeps each number next to its counterpart and the change between them,
so a reviewer reads "p95 TTFT 240 -> 120 ms (-120)" instead of two tables to diff by eye.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from laneway.review.endpoint_review import EndpointReview
from laneway.review.ttft_stages import STAGES, EndpointStages

FORMATS = ("table", "markdown", "json")


@dataclass(frozen=True)
class Run:
    """One reviewed run: its rows and where they came from."""

    label: str
    rows: list[EndpointReview]
    num_requests: int
    num_files: int
    num_skipped_lines: int
    start_s: float | None
    end_s: float | None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s if self.start_s is not None and self.end_s is not None else 0.0


_HEADERS = ["endpoint", "lane", "window", "requests", "queue p50", "queue p95", "TTFT p50", "TTFT p95",
            "TTFT p99", "TBT p95", "tokens/s", "refused", "cancelled", "verdict"]
_COMPARE_HEADERS = ["endpoint", "lane", "window", "requests", "queue p95", "TTFT p95", "TBT p95", "tokens/s",
                    "refused", "verdict"]


def render(runs: Sequence[Run], fmt: str) -> str:
    assert fmt in FORMATS, f"format must be one of {FORMATS}, got {fmt!r}"
    assert 1 <= len(runs) <= 2, "a review shows one run or compares two"
    if fmt == "json":
        return _json(runs)
    headers, cells = (_HEADERS, [_cells(r) for r in runs[0].rows]) if len(runs) == 1 else _compare(*runs)
    table = _markdown(headers, cells) if fmt == "markdown" else _text_table(headers, cells)
    lines = [_title(runs, fmt), "", table]
    notes = [note for run in runs for note in _notes(run, labelled=len(runs) > 1)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _title(runs: Sequence[Run], fmt: str) -> str:
    parts = [f"{r.label}: {r.num_requests} requests over {r.duration_s:.1f} s from {r.num_files} file(s)"
             + (f", {r.num_skipped_lines} unreadable line(s) skipped" if r.num_skipped_lines else "") for r in runs]
    title = "Latency review -- " + (" vs ".join(parts))
    return f"### {title}" if fmt == "markdown" else title


def _notes(run: Run, labelled: bool) -> list[str]:
    prefix = f"{run.label}: " if labelled else ""
    return [f"{prefix}{r.endpoint} ({r.lane}): first degrading signal: {r.degrading_signal}"
            for r in run.rows if r.degrading_signal]


def _cells(r: EndpointReview) -> list[str]:
    return [r.endpoint, r.lane, r.window, str(r.num_requests), _ms(r.queue_p50_ms), _ms(r.queue_p95_ms),
            _ms(r.ttft_p50_ms), _ms(r.ttft_p95_ms), _ms(r.ttft_p99_ms), _ms(r.tbt_p95_ms), _rate(r.tokens_per_s),
            str(r.num_refused), str(r.num_cancelled), r.verdict]


def _compare(a: Run, b: Run) -> tuple[list[str], list[list[str]]]:
    left = {(r.endpoint, r.lane): r for r in a.rows}
    right = {(r.endpoint, r.lane): r for r in b.rows}
    cells = []
    for key in sorted(left.keys() | right.keys()):
        x, y = left.get(key), right.get(key)
        cells.append([
            key[0], key[1], _pair(x.window if x else "-", y.window if y else "-"),
            _pair(str(x.num_requests) if x else "-", str(y.num_requests) if y else "-"),
            _delta_ms(x.queue_p95_ms if x else None, y.queue_p95_ms if y else None),
            _delta_ms(x.ttft_p95_ms if x else None, y.ttft_p95_ms if y else None),
            _delta_ms(x.tbt_p95_ms if x else None, y.tbt_p95_ms if y else None),
            _delta_rate(x.tokens_per_s if x else None, y.tokens_per_s if y else None),
            _pair(str(x.num_refused) if x else "-", str(y.num_refused) if y else "-"),
            _pair(x.verdict if x else "-", y.verdict if y else "-"),
        ])
    return _COMPARE_HEADERS, cells


def _json(runs: Sequence[Run]) -> str:
    body: dict[str, Any] = {"runs": [{
        "label": r.label, "num_requests": r.num_requests, "num_files": r.num_files,
        "num_skipped_lines": r.num_skipped_lines, "start_s": r.start_s, "end_s": r.end_s,
        "rows": [{**asdict(row), "window": row.window} for row in r.rows],
    } for r in runs]}
    if len(runs) == 2:
        body["compare"] = [dict(zip(_COMPARE_HEADERS, row)) for row in _compare(*runs)[1]]
    return json.dumps(body, indent=2)


def render_stages(rows: Sequence[EndpointStages], num_unstaged: int) -> str:
    """Per endpoint, the median of each TTFT stage and of the TTFT (laneway/review/ttft_stages.py)."""
    if not rows:
        return "No request could be staged: the traces need the gateway's and the workers' spans."
    headers = ["endpoint", "requests", *(f"{s} p50 ms" for s in STAGES), "TTFT p50 ms"]
    cells = [[r.endpoint, str(r.num_requests), *(f"{v:.2f}" for v in r.stage_p50_ms), f"{r.ttft_p50_ms:.2f}"]
             for r in rows]
    table = _markdown(headers, cells)
    return table + (f"\n\n{num_unstaged} request(s) not staged (retried, or their trace is incomplete)."
                    if num_unstaged else "")


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [i >= 3 and i < len(headers) - 1 for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if abs(value) < 10 else f"{value:.0f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _pair(a: str, b: str) -> str:
    return a if a == b else f"{a} -> {b}"


def _delta_ms(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return _pair(_ms(a), _ms(b))
    return f"{_ms(a)} -> {_ms(b)} ({b - a:+.0f})" if abs(b - a) >= 10 else f"{_ms(a)} -> {_ms(b)} ({b - a:+.1f})"


def _delta_rate(a: float | None, b: float | None) -> str:
    if a is None or b is None or a == 0:
        return _pair(_rate(a), _rate(b))
    return f"{_rate(a)} -> {_rate(b)} ({(b - a) / a * 100:+.0f}%)"
