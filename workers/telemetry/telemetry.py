"""A worker's telemetry: tracer, metrics registry, optional /metrics server.

The servicer reads the caller's trace context from gRPC metadata and reports each
stream's end here; the engine reports steps through `Engine.on_step`. Spans and request
metrics are recorded on the event loop when a stream ends, never on the engine thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import start_http_server

from telemetry import TracingConfig, build_tracer_provider
from telemetry import attributes as attr
from workers.engine.engine_loop import EngineLoop
from workers.engine.sequence import Sequence
from workers.telemetry.metrics import WorkerMetrics
from workers.telemetry.sequence_spans import StreamEnd, record_sequence_spans

SERVICE_NAME = "laneway-worker"
_TRACE_KEYS = ("traceparent", "tracestate")
log = logging.getLogger(__name__)


class WorkerTelemetry:
    def __init__(self, tracing: TracingConfig, loop: EngineLoop) -> None:
        self.config = tracing
        self.provider: TracerProvider | None = build_tracer_provider(tracing)
        self.tracer: Tracer | None = self.provider.get_tracer(attr.WORKER_SCOPE) if self.provider else None
        self.metrics = WorkerMetrics(loop)
        self.propagator = TraceContextTextMapPropagator()
        loop.engine.on_step = self.metrics.observe_step
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None

    @classmethod
    def create(cls, loop: EngineLoop, tracing: TracingConfig | None = None) -> WorkerTelemetry:
        """Tracing as configured, or as the environment says (OTEL_*, LANEWAY_TRACE_*)."""
        return cls(tracing or TracingConfig.from_env(SERVICE_NAME), loop)

    @staticmethod
    def carrier(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
        """The W3C trace context the gateway put in the call's metadata (empty if none)."""
        return {k: v for k, v in (metadata or ()) if k in _TRACE_KEYS and isinstance(v, str)}

    def stream_ended(self, seq: Sequence, end: StreamEnd) -> None:
        self.metrics.observe_finished(seq, end.endpoint, end.reason)
        if self.tracer is None:
            return
        parent: Context | None = self.propagator.extract(seq.trace_context) if seq.trace_context else None
        record_sequence_spans(self.tracer, parent, seq, end)

    def serve_metrics(self, host: str, port: int) -> int:
        """Start /metrics on its own thread; returns the bound port."""
        self._server, self._server_thread = start_http_server(port, addr=host, registry=self.metrics.registry)
        bound = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.provider is not None:
            self.provider.shutdown()  # flushes spans still queued
