"""The gateway's telemetry: its tracer, its metrics registry, and where requests' traces start.

Owned by the app's lifespan (created there, shut down there, which flushes queued spans).
`watch()` connects it to what only exists once the app runs: the live policy, the lane
dispatcher's snapshot and the served model's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.job import Job
from gateway.ratelimit import Limiter
from gateway.telemetry.lane_collector import LaneCollector, LaneSnapshot
from gateway.telemetry.limiter_collector import LimiterCollector
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.request_trace import CURRENT, RequestTrace
from lanes.policy_model import Policy
from telemetry import TracingConfig, build_tracer_provider
from telemetry import attributes as attr

SERVICE_NAME = "laneway-gateway"
WINDOW_REFRESH_S = 0.1  # how stale a span's batch-window attribute may be (see window_ms)
UNKNOWN_ENDPOINT = "unknown"  # a URL naming no endpoint of the policy: one label, not one per typo
_ENDPOINT_PREFIX = "/v1/endpoints/"
_TRACE_HEADERS = (b"traceparent", b"tracestate")


class GatewayTelemetry:
    def __init__(self, tracing: TracingConfig, metrics: GatewayMetrics | None = None) -> None:
        self.config = tracing
        self.provider: TracerProvider | None = build_tracer_provider(tracing)
        self.tracer: Tracer | None = self.provider.get_tracer(attr.GATEWAY_SCOPE) if self.provider else None
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self.propagator = TraceContextTextMapPropagator()
        self._policy: Callable[[], Policy] | None = None
        self._lanes: LaneSnapshot | None = None
        self._model_name: Callable[[], str] = lambda: "laneway"
        self._windows: dict[str, float] = {}
        self._windows_at = float("-inf")

    @classmethod
    def disabled(cls) -> GatewayTelemetry:
        """Metrics only, no spans (a service built without telemetry, e.g. in unit tests)."""
        return cls(TracingConfig.disabled(SERVICE_NAME))

    def watch(self, *, policy: Callable[[], Policy], lanes: LaneSnapshot | None,
              model_name: Callable[[], str], limiter: Limiter | None = None) -> None:
        self._policy = policy
        self._lanes = lanes
        self._model_name = model_name
        self.metrics.registry.register(LaneCollector(policy, lanes))
        if limiter is not None:
            self.metrics.registry.register(LimiterCollector(limiter))

    def shutdown(self) -> None:
        """Flush queued spans and stop the export thread."""
        if self.provider is not None:
            self.provider.shutdown()

    def model_name(self) -> str:
        return self._model_name()

    def window_ms(self, lane: str) -> float | None:
        """The lane's current batch window, for span attributes. Read from a snapshot at most
        WINDOW_REFRESH_S old: windows change a few times a second at most (auto lanes decide
        every 20 requests), while a fresh snapshot of every lane per request is not free."""
        if self._lanes is None:
            return None
        now = time.monotonic()
        if now - self._windows_at >= WINDOW_REFRESH_S:
            self._windows = {name: stats.window_ms for name, stats in self._lanes().items()}
            self._windows_at = now
        return self._windows.get(lane)

    def start_request(self, *, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> RequestTrace:
        """An HTTP generation request arrived; honours the client's traceparent if it sent one."""
        operation = "chat" if path.endswith("/chat/completions") else "text_completion"
        span = None
        if self.tracer is not None:
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _TRACE_HEADERS}
            parent = self.propagator.extract(carrier) if carrier else None
            span = self.tracer.start_span(operation, context=parent, kind=SpanKind.SERVER)
        return RequestTrace(self, span, operation=operation, endpoint=self._endpoint(path), is_http=True)

    def generation(self, job: Job) -> RequestTrace:
        """The trace of the HTTP request being served, or a new one for work without one
        (Batch API items); bound to `job` either way."""
        trace = CURRENT.get()
        if trace is None or trace.job is not None or trace.is_ended:
            operation = "chat" if job.kind == "chat" else "text_completion"
            span = self.tracer.start_span(operation, kind=SpanKind.INTERNAL) if self.tracer is not None else None
            trace = RequestTrace(self, span, operation=operation, endpoint=job.endpoint, is_http=False)
        trace.bind(job)
        return trace

    def _endpoint(self, path: str) -> str:
        policy = self._policy() if self._policy is not None else None
        if path.startswith(_ENDPOINT_PREFIX):
            name = path[len(_ENDPOINT_PREFIX):].split("/", 1)[0]
        elif policy is not None:
            name = policy.default_endpoint
        else:
            return UNKNOWN_ENDPOINT
        return name if policy is not None and name in policy.endpoints else UNKNOWN_ENDPOINT
