"""JSON lines span files: what the exporter writes, the reader gives back."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from telemetry import read_spans
from telemetry.span_file import SpanFileExporter


def _write(path: Path) -> tuple[int, int]:
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    exporter = SpanFileExporter(path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("laneway.gateway")
    parent = tracer.start_span("parent", kind=SpanKind.SERVER, start_time=1_000, attributes={"a": 1, "l": ["x"]})
    child = tracer.start_span("child", context=set_span_in_context(parent), start_time=2_000)
    child.end(end_time=3_000)
    parent.end(end_time=4_000)
    provider.shutdown()
    return parent.get_span_context().span_id, child.get_span_context().span_id


def test_round_trip(tmp_path: Path) -> None:
    parent_id, child_id = _write(tmp_path / "a.jsonl")
    contents = read_spans([tmp_path / "a.jsonl"])
    child, parent = contents.spans  # children end first
    assert (parent.name, parent.kind, parent.scope, parent.service) == ("parent", "SERVER", "laneway.gateway", "svc")
    assert (parent.start_ns, parent.end_ns, parent.parent_span_id) == (1_000, 4_000, None)
    assert parent.attributes == {"a": 1, "l": ["x"]}
    assert child.parent_span_id == f"{parent_id:016x}" and child.span_id == f"{child_id:016x}"
    assert child.trace_id == parent.trace_id and len(child.trace_id) == 32


def test_a_directory_is_read_recursively_and_torn_lines_are_counted(tmp_path: Path) -> None:
    _write(tmp_path / "gw" / "a.jsonl")
    _write(tmp_path / "wk" / "b.jsonl")
    with open(tmp_path / "wk" / "b.jsonl", "a") as f:
        f.write('{"trace_id": "abc", "span_')  # a process still writing
    contents = read_spans([tmp_path])
    assert len(contents.spans) == 4 and len(contents.files) == 2 and contents.num_skipped_lines == 1


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.jsonl"):
        read_spans([tmp_path / "nothing.jsonl"])
