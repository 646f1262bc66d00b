"""A finished sequence's worker spans, built after the fact from its timestamps.

The engine thread only stamps times on the Sequence (arrival, first scheduled, first
token, finish); the servicer calls this once the stream ends, on the event loop. So
tracing costs the engine nothing per step, and a request's spans are:

  Worker/Generate (SERVER, child of the gateway's dispatch span via traceparent)
    laneway.engine.queue     arrival -> first scheduled
    laneway.engine.prefill   first scheduled -> first token  (laneway.num_prefill_chunks)
    laneway.engine.decode    first token -> finish
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from telemetry import attributes as attr
from workers.engine.sequence import Sequence


@dataclass(frozen=True)
class StreamEnd:
    """How the Generate call ended, from the servicer's side."""

    received_s: float  # the call arrived (before tokenizing)
    ended_s: float  # the last chunk was sent, or the call was cancelled
    reason: str  # stop, length, abort, cancelled, error
    endpoint: str
    batch_id: str
    worker_id: str
    error: str | None = None


_OUTCOMES = {"stop": attr.OK, "length": attr.OK, "abort": attr.ABORTED, "cancelled": attr.CANCELLED,
             "error": attr.ERROR}


def _ns(unix_s: float) -> int:
    return int(unix_s * 1e9)


def record_sequence_spans(tracer: Tracer, parent: Context | None, seq: Sequence, end: StreamEnd) -> None:
    server = tracer.start_span(attr.GENERATE_RPC_SPAN, context=parent, kind=SpanKind.SERVER,
                               start_time=_ns(end.received_s))
    if not server.is_recording():
        server.end(end_time=_ns(end.ended_s))
        return
    server.set_attributes(_server_attributes(seq, end))
    if end.error is not None:
        server.set_status(Status(StatusCode.ERROR, end.error))
    ctx = set_span_in_context(server)
    scheduled = seq.first_scheduled_time
    first_token = seq.first_token_time
    finished = seq.finish_time if seq.finish_time is not None else end.ended_s
    _child(tracer, ctx, attr.ENGINE_QUEUE_SPAN, seq.arrival_time, scheduled or end.ended_s,
           {attr.LANE: seq.lane.name, attr.PRIORITY: seq.lane.priority})
    if scheduled is not None:
        _child(tracer, ctx, attr.ENGINE_PREFILL_SPAN, scheduled, first_token or finished,
               {attr.NUM_PREFILL_CHUNKS: seq.num_prefill_chunks, attr.USAGE_INPUT_TOKENS: seq.num_prompt_tokens,
                attr.CACHED_PROMPT_TOKENS: seq.num_cached_tokens})
    if first_token is not None:
        _child(tracer, ctx, attr.ENGINE_DECODE_SPAN, first_token, max(first_token, finished),
               {attr.USAGE_OUTPUT_TOKENS: seq.num_output_tokens, attr.NUM_PREEMPTIONS: seq.num_preemptions})
    server.end(end_time=_ns(end.ended_s))


def _child(tracer: Tracer, ctx: Context, name: str, start_s: float, end_s: float, attributes: dict[str, Any]) -> None:
    span = tracer.start_span(name, context=ctx, start_time=_ns(start_s), attributes=attributes)
    span.end(end_time=_ns(max(start_s, end_s)))


def _server_attributes(seq: Sequence, end: StreamEnd) -> dict[str, Any]:
    a: dict[str, Any] = {
        attr.RPC_SYSTEM: "grpc",
        attr.RESPONSE_ID: seq.seq_id, attr.ENDPOINT: end.endpoint, attr.LANE: seq.lane.name,
        attr.PRIORITY: seq.lane.priority, attr.WORKER_ID: end.worker_id, attr.OUTCOME: _OUTCOMES[end.reason],
        attr.REQUEST_MAX_TOKENS: seq.sampling.max_tokens, attr.REQUEST_TEMPERATURE: seq.sampling.temperature,
        attr.USAGE_INPUT_TOKENS: seq.num_prompt_tokens, attr.USAGE_OUTPUT_TOKENS: seq.num_output_tokens,
        attr.CACHED_PROMPT_TOKENS: seq.num_cached_tokens, attr.NUM_PREEMPTIONS: seq.num_preemptions,
        attr.NUM_PREFILL_CHUNKS: seq.num_prefill_chunks,
    }
    if end.batch_id:
        a[attr.BATCH_ID] = end.batch_id
    if end.reason in ("stop", "length", "abort"):
        a[attr.RESPONSE_FINISH_REASONS] = [end.reason]
    if seq.first_scheduled_time is not None:
        a[attr.ENGINE_QUEUE_MS] = (seq.first_scheduled_time - seq.arrival_time) * 1000.0
    if end.error is not None:
        a[attr.ERROR_TYPE] = "engine_error"
    return a
