"""Tracing shared by the gateway and the workers: config, provider, span files, names.

On the lowest floor, beside lanes/ and proto/: it imports no other Laneway package, so the
gateway, the workers and the CLI may all import it (docs/architecture.md).
"""

from telemetry.span_file import SpanRecord, read_spans
from telemetry.tracer_provider import build_tracer_provider
from telemetry.tracing_config import TracingConfig, TracingConfigError

__all__ = ["SpanRecord", "TracingConfig", "TracingConfigError", "build_tracer_provider", "read_spans"]
