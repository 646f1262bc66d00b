"""Tracing shared by the gateway and the workers: config, provider, span files, names.

A leaf package: it imports neither gateway nor workers, so both may import it.
"""

from laneway.telemetry.span_file import SpanRecord, read_spans
from laneway.telemetry.tracer_provider import build_tracer_provider
from laneway.telemetry.tracing_config import TracingConfig, TracingConfigError

__all__ = ["SpanRecord", "TracingConfig", "TracingConfigError", "build_tracer_provider", "read_spans"]
