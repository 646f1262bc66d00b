"""`laneway review TRACES [--compare OTHER] [--policy FILE] [--format ...] [--plot out.png] [--stages]`.

TRACES is a JSON lines span file or a directory of them (e.g. .laneway/traces, where a
gateway without a collector writes). Exit status: 0 when every endpoint with a budget is
within it, 1 when one is over, 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from gateway.config import DEFAULT_POLICY
from lanes.policy import Policy, PolicyError, load_policy
from laneway.review.endpoint_review import review
from laneway.review.plot import PlotUnavailable, plot_ttft
from laneway.review.render import FORMATS, Run, render, render_stages
from laneway.review.request_row import RequestRow, request_rows
from laneway.review.ttft_stages import STAGES, EndpointStages, by_endpoint, staged_requests
from telemetry import SpanRecord, read_spans


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("traces", type=Path, help="a .jsonl span file or a directory of them")
    p.add_argument("--compare", type=Path, default=None, metavar="OTHER_TRACES",
                   help="a second run, shown side by side with deltas (second minus first)")
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy whose budgets to judge against")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT_PNG", help="TTFT distribution per endpoint")
    p.add_argument("--stages", action="store_true",
                   help="also where TTFT went, stage by stage (needs the workers' spans beside the gateway's)")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    try:
        policy = load_policy(a.policy)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        loaded = [_load(a.traces)] + ([_load(a.compare)] if a.compare is not None else [])
    except (FileNotFoundError, OSError) as exc:
        print(f"laneway review: {exc}", file=sys.stderr)
        return 2
    runs = [_run(str(t.path), t.rows, t.num_files, t.num_skipped, policy) for t in loaded]
    stages = _stages(loaded[0].spans, loaded[0].rows) if a.stages else None
    if stages is not None and a.format == "json":
        body = json.loads(render(runs, a.format))
        body["ttft_stages"] = {"stages": list(STAGES), "num_unstaged": stages[1],
                               "endpoints": [asdict(row) for row in stages[0]]}
        print(json.dumps(body, indent=2))
    else:
        print(render(runs, a.format))
        if stages is not None:
            print("\nWhere TTFT went (medians per stage)\n\n" + render_stages(*stages))
    if a.plot is not None:
        try:
            plot_ttft([(str(t.path), t.rows) for t in loaded], policy, a.plot)
        except PlotUnavailable as exc:
            print(f"laneway review: {exc}", file=sys.stderr)
            return 2
        print(f"\nTTFT distributions written to {a.plot}", file=sys.stderr)
    return 1 if any(r.over_budget_ms is not None for r in runs[-1].rows) else 0


class Traces(NamedTuple):
    """One trace directory (or file) as read: its requests, and its spans for --stages."""
    path: Path
    rows: list[RequestRow]
    num_files: int
    num_skipped: int  # lines that were not spans
    spans: list[SpanRecord]


def _load(path: Path) -> Traces:
    contents = read_spans([path])
    if not contents.files:
        raise FileNotFoundError(f"no .jsonl trace files in {path}")
    return Traces(path, request_rows(contents.spans), len(contents.files), contents.num_skipped_lines,
                  contents.spans)


def _stages(spans: list[SpanRecord], rows: list[RequestRow]) -> tuple[list[EndpointStages], int]:
    """Per endpoint, where TTFT went; and how many served requests could not be staged."""
    staged = staged_requests(spans)
    num_with_token = sum(r.ttft_ms is not None for r in rows)
    return by_endpoint(staged), max(num_with_token - len(staged), 0)


def _run(label: str, rows: list[RequestRow], num_files: int, skipped: int, policy: Policy) -> Run:
    return Run(label=label, rows=review(rows, policy), num_requests=len(rows), num_files=num_files,
               num_skipped_lines=skipped, start_s=min((r.start_s for r in rows), default=None),
               end_s=max((r.end_s for r in rows), default=None))
