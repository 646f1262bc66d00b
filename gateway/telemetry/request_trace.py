"""One request as telemetry sees it: its spans and the numbers that end up in metrics.

Who reports what: the HTTP middleware opens it, reports the response (status, reject
reason, last byte) and ends it; GenerationService binds the job and reports the lane
queue, each dispatch attempt and every chunk. A Batch API item has no HTTP request, so
the service opens one itself and ends it when the stream ends.

Cost on the request path: per chunk a clock read, a list append and one histogram
observation. Queue and dispatch spans are created only for sampled requests, and span
attributes are built once, at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from starlette.requests import ClientDisconnect

from gateway.errors import APIError
from gateway.job import Chunk, Job
from gateway.telemetry.span_attributes import server_span_attributes
from telemetry import attributes as attr

if TYPE_CHECKING:
    from gateway.telemetry.metrics import LaneInstruments
    from gateway.telemetry.telemetry import GatewayTelemetry

NO_LANE = "none"  # label for requests refused before they were classified
REJECT_REASON_HEADER = "x-laneway-reject-reason"
_CANCELLATIONS = (GeneratorExit, ClientDisconnect, asyncio.CancelledError)

# The trace of the HTTP request this task serves: set by the middleware, read by the
# service. A ContextVar because the route code between them (rate limits, Batch API) should
# not have to carry it, and tasks spawned while serving the request inherit it.
CURRENT: ContextVar[RequestTrace | None] = ContextVar("laneway_request_trace", default=None)


def _ns(unix_s: float) -> int:
    return int(unix_s * 1e9)


class RequestTrace:
    def __init__(self, telemetry: GatewayTelemetry, span: Span | None, *, operation: str, endpoint: str,
                 is_http: bool) -> None:
        self._telemetry = telemetry
        self.span = span  # None: tracing is off
        self._context: Context | None = set_span_in_context(span) if span is not None else None
        self.operation = operation
        self.endpoint = endpoint  # from the URL until a job is bound
        self.lane = NO_LANE
        self.is_http = is_http
        self.started_s = time.time()
        self.job: Job | None = None
        self.window_ms: float | None = None
        self.status: int | None = None
        self.reject_reason: str | None = None
        self.error_type: str | None = None
        self.is_response_complete = False
        self.first_chunk_s: float | None = None
        self.last_token_s: float | None = None
        self.gaps_s: list[float] = []
        self.num_prompt_tokens = 0
        self.num_output_tokens = 0
        self.num_cached_tokens = 0
        self.num_preemptions = 0
        self.finish_reason: str | None = None
        self.texts: list[str] | None = [] if telemetry.config.record_content else None
        self._lane_metrics: LaneInstruments | None = None
        self.is_ended = False

    @property
    def is_recording(self) -> bool:
        return self.span is not None and self.span.is_recording()

    # -- from the service ----------------------------------------------------------------

    def bind(self, job: Job) -> None:
        self.job = job
        self.endpoint = job.endpoint
        self.lane = job.lane.name
        self._lane_metrics = self._telemetry.metrics.for_lane(job.endpoint, job.lane.name)

    @contextlib.contextmanager
    def lane_queue(self, job: Job) -> Iterator[None]:
        """Around dispatcher.acquire(): the wait, refusal or cancellation in the lane queue."""
        try:
            yield
        except BaseException as exc:
            self._record_queue(job, exc)
            raise
        self._record_queue(job, None)

    @contextlib.contextmanager
    def dispatch(self, job: Job, address: str, attempt: int) -> Iterator[None]:
        """Around one gRPC call to a worker; puts this trace's traceparent into the call's metadata."""
        span: Span | None = None
        if self.span is not None and self._context is not None:
            context = self._context  # unsampled: the worker is told so and records nothing either
            tracer = self._telemetry.tracer
            if self.span.is_recording() and tracer is not None:  # a recording span implies a tracer
                span = tracer.start_span(
                    attr.GENERATE_RPC_SPAN, context=self._context, kind=SpanKind.CLIENT,
                    attributes={attr.RPC_SYSTEM: "grpc", attr.SERVER_ADDRESS: address, attr.ATTEMPT: attempt})
                context = set_span_in_context(span)
            self._telemetry.propagator.inject(job.trace_headers, context=context)
        try:
            yield
        except BaseException as exc:
            if span is not None:
                _end_with_error(span, exc)
            raise
        if span is not None:
            span.end()

    def chunk(self, chunk: Chunk) -> None:
        now = time.time()
        if self.first_chunk_s is None:
            self.first_chunk_s = now
            if self._lane_metrics is not None:
                self._lane_metrics.ttft.observe(now - self.started_s)
                if self.job is not None and self.job.predicted_wait_s is not None:
                    self._lane_metrics.predicted_wait.observe(self.job.predicted_wait_s)
        elif chunk.token_ids and self.last_token_s is not None:
            gap = now - self.last_token_s
            self.gaps_s.append(gap)
            if self._lane_metrics is not None:
                self._lane_metrics.itl.observe(gap)
        if chunk.token_ids:
            self.last_token_s = now
            self.num_output_tokens += len(chunk.token_ids)
        if chunk.prompt_tokens:
            self.num_prompt_tokens = chunk.prompt_tokens
        if chunk.has_usage:
            self.num_output_tokens = chunk.completion_tokens
            self.num_cached_tokens = chunk.cached_prompt_tokens
            self.num_preemptions = chunk.num_preemptions
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if self.texts is not None:
            self.texts.append(chunk.text)

    def generation_done(self) -> None:
        """The service's stream ended; a trace the service opened itself ends with it."""
        if not self.is_http:
            self.end()

    # -- from the middleware (and the service, for errors) -------------------------------

    def response_started(self, status: int, reject_reason: str | None) -> None:
        self.status = status
        if reject_reason:
            self.reject_reason = reject_reason

    def response_complete(self) -> None:
        self.is_response_complete = True

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, APIError):
            self.status = exc.status
            reason = exc.headers.get(REJECT_REASON_HEADER)
            if reason:
                self.reject_reason = reason
        elif not _is_cancellation(exc) and self.error_type is None:
            # A client that left is no error; `outcome` tells it by what never completed.
            self.error_type = type(exc).__name__

    # -- the end -------------------------------------------------------------------------

    @property
    def outcome(self) -> str:
        if self.reject_reason is not None:
            return attr.REFUSED
        if self.status == 499:
            return attr.CANCELLED
        if self.error_type is not None or (self.status is not None and self.status >= 500):
            return attr.ERROR
        if self.status is not None and self.status >= 400:
            return attr.INVALID
        if self.finish_reason is None or (self.is_http and not self.is_response_complete):
            return attr.CANCELLED
        return attr.ABORTED if self.finish_reason == "abort" else attr.OK

    @property
    def stage(self) -> str:
        """Where the request was when it ended: intake, queue, worker (no token yet) or stream."""
        job = self.job
        if job is None:
            return "intake"
        if job.enqueued_at is not None and job.dispatched_at is None:
            return "queue"
        return "worker" if self.first_chunk_s is None else "stream"

    def end(self) -> None:
        if self.is_ended:
            return
        self.is_ended = True
        now = time.time()
        outcome = self.outcome
        m = self._telemetry.metrics
        m.requests.labels(self.endpoint, self.lane, outcome).inc()
        if outcome == attr.REFUSED:
            m.refusals.labels(self.endpoint, self.lane, self.reject_reason).inc()
        elif outcome == attr.CANCELLED:
            m.cancellations.labels(self.endpoint, self.lane, self.stage).inc()
        lm = self._lane_metrics
        if lm is not None and self.first_chunk_s is not None:
            lm.prompt_tokens.inc(self.num_prompt_tokens)
            lm.generation_tokens.inc(self.num_output_tokens)
            if outcome == attr.OK:
                lm.e2e.observe(now - self.started_s)
                lm.request_prompt_tokens.observe(self.num_prompt_tokens)
                lm.request_generation_tokens.observe(self.num_output_tokens)
        span = self.span
        if span is None:
            return
        if span.is_recording():
            model = self._telemetry.model_name()
            span.update_name(f"{self.operation} {model}")
            span.set_attributes(server_span_attributes(self, outcome, model))
            if outcome == attr.ERROR:
                span.set_status(Status(StatusCode.ERROR, self.error_type or f"HTTP {self.status}"))
        span.end(end_time=_ns(now))

    # -- internals -----------------------------------------------------------------------

    def _record_queue(self, job: Job, exc: BaseException | None) -> None:
        now = time.time()
        dispatched = job.dispatched_at is not None and exc is None
        if dispatched and job.enqueued_at is not None and self._lane_metrics is not None:
            self._lane_metrics.queue_wait.observe(job.dispatched_at - job.enqueued_at)  # type: ignore[operator]
            self._lane_metrics.batch_size.observe(job.batch_size)
        tracer = self._telemetry.tracer
        if not self.is_recording or tracer is None:  # a recording span implies a tracer
            return
        if job.enqueued_at is None and exc is None:
            return  # no lane queue in front of the workers (the no-lanes baseline)
        started = job.enqueued_at if job.enqueued_at is not None else now  # refused on arrival: zero length
        left: float = job.dispatched_at if dispatched else now  # type: ignore[assignment]
        a: dict[str, Any] = {attr.LANE: job.lane.name}  # its duration is the wait; batch facts: server span
        if dispatched:
            self.window_ms = self._telemetry.window_ms(job.lane.name)
        elif isinstance(exc, APIError) and exc.headers.get(REJECT_REASON_HEADER):
            a[attr.REJECT_REASON] = exc.headers[REJECT_REASON_HEADER]
        elif exc is not None and _is_cancellation(exc):
            a[attr.OUTCOME] = attr.CANCELLED
        span = tracer.start_span(attr.LANE_QUEUE_SPAN, context=self._context, start_time=_ns(started), attributes=a)
        span.end(end_time=_ns(left))


def _is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, _CANCELLATIONS)


def _end_with_error(span: Span, exc: BaseException) -> None:
    if _is_cancellation(exc):
        span.set_attribute(attr.OUTCOME, attr.CANCELLED)
    else:
        span.set_attribute(attr.ERROR_TYPE, type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
    span.end()
