"""`laneway review --stages`: a request's TTFT split into stages from its gateway and worker spans."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from laneway.cli import main
from laneway.review.render import render_stages
from laneway.review.ttft_stages import STAGES, by_endpoint, staged_requests
from telemetry import SpanRecord
from telemetry import attributes as attr

MS = 1_000_000  # ns
T0 = 1_800_000_000 * 10**9


def _trace(trace_id: str, *, endpoint: str = "chat", start_ns: int = T0, marks_ms: tuple[float, ...] = (
        0.4, 0.1, 0.2, 0.8, 0.3, 12.0, 1.1), attempts: int = 1, with_worker: bool = True,
        with_lanes: bool = True) -> list[SpanRecord]:
    """A whole trace whose stages take `marks_ms` (in STAGES order)."""
    at = [start_ns]
    for ms in marks_ms:
        at.append(at[-1] + round(ms * MS))
    received, queued, left, called, handled, prefill_start, prefill_end, first_chunk = at

    def span(name: str, kind: str, scope: str, start: int, end: int, **attributes: object) -> SpanRecord:
        return SpanRecord(trace_id=trace_id, span_id=f"{len(name)}{start}", parent_span_id=None, name=name, kind=kind,
                          scope=scope, service=scope, start_ns=start, end_ns=end, attributes=dict(attributes))

    ttft_s = (first_chunk - received) / 1e9
    spans = [span("chat m", "SERVER", attr.GATEWAY_SCOPE, received, first_chunk + 500 * MS,
                  **{attr.ENDPOINT: endpoint, attr.RESPONSE_TIME_TO_FIRST_CHUNK: ttft_s, attr.OUTCOME: attr.OK,
                     attr.OPERATION_NAME: "chat"})]
    if with_lanes:
        spans.append(span(attr.LANE_QUEUE_SPAN, "INTERNAL", attr.GATEWAY_SCOPE, queued, left))
    spans += [span(attr.GENERATE_RPC_SPAN, "CLIENT", attr.GATEWAY_SCOPE, called + i, first_chunk + 400 * MS)
              for i in range(attempts)]
    if with_worker:
        spans += [span(attr.GENERATE_RPC_SPAN, "SERVER", attr.WORKER_SCOPE, handled, prefill_end + 300 * MS),
                  span(attr.ENGINE_QUEUE_SPAN, "INTERNAL", attr.WORKER_SCOPE, handled, prefill_start),
                  span(attr.ENGINE_PREFILL_SPAN, "INTERNAL", attr.WORKER_SCOPE, prefill_start, prefill_end),
                  span(attr.ENGINE_DECODE_SPAN, "INTERNAL", attr.WORKER_SCOPE, prefill_end, prefill_end + 300 * MS)]
    return spans


def test_stages_are_the_gaps_between_the_spans_and_add_up_to_the_ttft() -> None:
    marks = (0.4, 0.1, 0.2, 0.8, 0.3, 12.0, 1.1)
    [req] = staged_requests(_trace("a" * 32, marks_ms=marks))
    assert req.endpoint == "chat"
    assert req.stages_ms == pytest.approx(marks)
    assert sum(req.stages_ms) == pytest.approx(req.ttft_ms)
    assert len(req.stages_ms) == len(STAGES)


def test_retried_and_incomplete_traces_are_not_staged() -> None:
    spans = [*_trace("a" * 32), *_trace("b" * 32, attempts=2), *_trace("c" * 32, with_worker=False)]
    assert [r.ttft_ms for r in staged_requests(spans)] == pytest.approx([sum((0.4, 0.1, 0.2, 0.8, 0.3, 12.0, 1.1))])


def test_a_gateway_without_lanes_has_its_whole_intake_before_the_call() -> None:
    [req] = staged_requests(_trace("a" * 32, marks_ms=(0.4, 0.1, 0.2, 0.8, 0.3, 12.0, 1.1), with_lanes=False))
    assert req.stages_ms == pytest.approx((0.7, 0.0, 0.0, 0.8, 0.3, 12.0, 1.1))


def test_per_endpoint_medians_are_each_stage_on_its_own() -> None:
    spans = [*_trace("a" * 32, marks_ms=(1, 1, 1, 1, 1, 10, 1)),
             *_trace("b" * 32, start_ns=T0 + 10**9, marks_ms=(3, 1, 1, 1, 1, 20, 1)),
             *_trace("c" * 32, start_ns=T0 + 2 * 10**9, marks_ms=(2, 1, 1, 1, 1, 30, 5)),
             *_trace("d" * 32, endpoint="inline", marks_ms=(0.5, 0, 0, 1, 1, 5, 1))]
    requests = staged_requests(spans)
    assert [r.endpoint for r in requests] == ["chat", "inline", "chat", "chat"]  # in start order
    chat, inline = by_endpoint(requests)
    assert (chat.endpoint, chat.num_requests, inline.num_requests) == ("chat", 3, 1)
    assert chat.stage_p50_ms == pytest.approx((2, 1, 1, 1, 1, 20, 1))
    assert chat.ttft_p50_ms == pytest.approx(28)  # of 16, 28 and 41
    table = render_stages([chat, inline], num_unstaged=2)
    assert "| chat | 3 | 2.00 | 1.00 | 1.00 | 1.00 | 1.00 | 20.00 | 1.00 | 28.00 |" in table
    assert "2 request(s) not staged" in table


def test_nothing_to_stage_says_what_is_missing() -> None:
    assert "need the gateway's and the workers' spans" in render_stages([], num_unstaged=0)


def test_review_stages_flag_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans = [*_trace("a" * 32), *_trace("b" * 32, with_worker=False)]
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(dataclasses.asdict(s)) + "\n" for s in spans))
    code = main(["review", str(path), "--stages"])
    out = capsys.readouterr().out
    assert code in (0, 1), out
    assert "Where TTFT went" in out
    assert "| chat | 1 | 0.40 | 0.10 | 0.20 | 0.80 | 0.30 | 12.00 | 1.10 | 14.90 |" in out
    assert "1 request(s) not staged" in out


def test_review_stages_in_json_stay_one_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(dataclasses.asdict(s)) + "\n" for s in _trace("a" * 32)))
    code = main(["review", str(path), "--stages", "--format", "json"])
    body = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert body["ttft_stages"]["stages"] == list(STAGES) and body["ttft_stages"]["num_unstaged"] == 0
    [chat] = body["ttft_stages"]["endpoints"]
    assert chat["endpoint"] == "chat" and chat["stage_p50_ms"] == pytest.approx([0.4, 0.1, 0.2, 0.8, 0.3, 12.0, 1.1])
    assert body["runs"][0]["rows"][0]["endpoint"] == "chat"  # the review itself is still there
