"""Spans as JSON lines: what a single machine keeps when no collector is configured.

One finished span per line, written by the SDK's batch processor thread (never on a
request's path). `laneway review` reads the same files back, so the format lives here,
in one place, for both sides:

  {"trace_id": 32 hex, "span_id": 16 hex, "parent_span_id": 16 hex | null, "name": str,
   "kind": "SERVER" | "CLIENT" | "INTERNAL" | ..., "scope": instrumentation scope name,
   "service": service.name, "start_ns": int, "end_ns": int (unix nanoseconds),
   "status": "UNSET" | "OK" | "ERROR", "status_message": str | null, "attributes": {...}}

A file may end in a half-written line while its process runs; readers skip such lines
and say how many they skipped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    scope: str
    service: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def start_s(self) -> float:
        return self.start_ns / 1e9

    @property
    def end_s(self) -> float:
        return self.end_ns / 1e9


_KINDS = {kind: kind.name for kind in SpanKind}
_STATUSES = {code: code.name for code in StatusCode}


def to_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.context
    assert ctx is not None, f"span {span.name!r} has no context"
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": _KINDS[span.kind],
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "",
        "service": span.resource.attributes.get("service.name", ""),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": _STATUSES[span.status.status_code],
        "status_message": span.status.description,
        "attributes": dict(span.attributes) if span.attributes else {},  # tuples encode as JSON lists
    }


class SpanFileExporter(SpanExporter):
    """Appends spans to one JSON lines file; safe to share a directory with other processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # export() and shutdown() may race at process exit
        self._file: TextIO | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(to_record(s), separators=(",", ":"), default=str) + "\n" for s in spans)
        with self._lock:
            try:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.path, "a", encoding="utf-8")
                self._file.write(lines)  # one write per batch: whole lines for concurrent readers
                self._file.flush()
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export() flushes


@dataclass
class SpanFileContents:
    spans: list[SpanRecord]
    files: list[Path]
    num_skipped_lines: int = 0


def trace_files(paths: Iterable[Path]) -> list[Path]:
    """The .jsonl files named, or found (recursively) in the directories named."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob("*.jsonl")))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no trace file or directory at {path}")
    return found


def read_spans(paths: Iterable[Path]) -> SpanFileContents:
    files = trace_files(paths)
    spans: list[SpanRecord] = []
    skipped = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    spans.append(_from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    skipped += 1
    return SpanFileContents(spans=spans, files=files, num_skipped_lines=skipped)


def _from_json(d: dict[str, Any]) -> SpanRecord:
    return SpanRecord(
        trace_id=str(d["trace_id"]), span_id=str(d["span_id"]), parent_span_id=d.get("parent_span_id"),
        name=str(d["name"]), kind=str(d.get("kind", "INTERNAL")), scope=str(d.get("scope", "")),
        service=str(d.get("service", "")), start_ns=int(d["start_ns"]), end_ns=int(d["end_ns"]),
        status=str(d.get("status", "UNSET")), status_message=d.get("status_message"),
        attributes=dict(d.get("attributes") or {}),
    )
