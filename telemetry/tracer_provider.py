"""One TracerProvider per component (gateway app, worker), never the global one.

Two gateway apps in one test process each keep their own spans, and nothing a library
does to the global provider changes where Laneway's spans go. Spans leave through a
BatchSpanProcessor: ending a span only queues it; encoding and writing happen on the
processor's thread, off the request path.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

from telemetry.span_file import SpanFileExporter
from telemetry.tracing_config import TracingConfig

log = logging.getLogger(__name__)


def build_tracer_provider(config: TracingConfig) -> TracerProvider | None:
    """None when tracing is off: callers then create no spans at all (not even no-op ones)."""
    if not config.is_enabled:
        return None
    resource = Resource.create({"service.name": config.service_name, "service.namespace": "laneway"})
    # Parent-based: a caller's sampled/unsampled decision is kept; new traces by the ratio.
    root = ALWAYS_ON if config.sample_ratio == 1.0 else TraceIdRatioBased(config.sample_ratio)
    provider = TracerProvider(sampler=ParentBased(root), resource=resource)
    exporter = build_exporter(config)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def build_exporter(config: TracingConfig) -> SpanExporter:
    if config.span_exporter is not None:
        return config.span_exporter
    if config.otlp_endpoint is None:
        path = config.trace_file()
        log.info("tracing: no collector configured; spans go to %s", path)
        return SpanFileExporter(path)
    log.info("tracing: OTLP %s to %s", config.otlp_protocol, config.otlp_endpoint)
    if config.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=config.otlp_endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=config.otlp_endpoint)
