"""Where each request's time to first token went, stage by stage, from the trace tree.

The gateway's server span says how long a first token took. Joined by trace id with the
gateway's lane-queue and gRPC client spans and the worker's spans, the trace says where:

  intake        gateway received the request -> it joined its lane queue (body, auth,
                validation, rate limits)
  lane queue    in the lane queue (batch window, budgets)
  dispatch      left the lane -> the gRPC call started (worker pick, request encoding)
  to worker     gRPC call started -> the worker's handler started (both event loops, the wire)
  engine queue  the worker's handler -> the engine scheduled the prefill
  prefill       the prefill's steps (the first token is sampled at the end of the last)
  to gateway    the prefill ended -> the gateway had the first chunk (the worker's loop, the
                wire, the gateway's gRPC read)

The stages add up to the gateway's TTFT. Three of them span two processes, so they
compare two processes' clocks: exact on one machine, off by the clock skew across
machines. A gateway without lanes (`--no-lanes`) records no lane queue: its intake runs to
the gRPC call, and its lane queue and dispatch are 0. A request is staged only if its trace
is otherwise whole and it made one attempt (a retried request's first worker never
produced its token).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from telemetry import SpanRecord
from telemetry import attributes as attr

STAGES = ("intake", "lane queue", "dispatch", "to worker", "engine queue", "prefill", "to gateway")


@dataclass(frozen=True)
class StagedRequest:
    endpoint: str
    ttft_ms: float  # as the gateway saw it: received -> first chunk
    stages_ms: tuple[float, ...]  # in STAGES order; they add up to ttft_ms


@dataclass(frozen=True)
class EndpointStages:
    endpoint: str
    num_requests: int
    ttft_p50_ms: float
    stage_p50_ms: tuple[float, ...]  # the median of each stage on its own (medians do not add up)


def staged_requests(spans: Iterable[SpanRecord]) -> list[StagedRequest]:
    """Every request whose trace holds all the spans a staging needs, in start order."""
    traces: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    staged = [s for s in (_stage(trace) for trace in traces.values()) if s is not None]
    return [s for _, s in sorted(staged, key=lambda pair: pair[0])]


def _stage(trace: list[SpanRecord]) -> tuple[int, StagedRequest] | None:
    def one(scope: str, kind: str, name: str | None = None) -> SpanRecord | None:
        found = [s for s in trace if s.scope == scope and s.kind == kind and (name is None or s.name == name)]
        return found[0] if len(found) == 1 else None  # none, or a retried request's several

    server = one(attr.GATEWAY_SCOPE, "SERVER")
    queue = one(attr.GATEWAY_SCOPE, "INTERNAL", attr.LANE_QUEUE_SPAN)
    call = one(attr.GATEWAY_SCOPE, "CLIENT", attr.GENERATE_RPC_SPAN)
    handler = one(attr.WORKER_SCOPE, "SERVER", attr.GENERATE_RPC_SPAN)
    prefill = one(attr.WORKER_SCOPE, "INTERNAL", attr.ENGINE_PREFILL_SPAN)
    ttft_s = server.attributes.get(attr.RESPONSE_TIME_TO_FIRST_CHUNK) if server is not None else None
    if server is None or call is None or handler is None or prefill is None or not isinstance(ttft_s, (int, float)):
        return None
    queued, left = (queue.start_ns, queue.end_ns) if queue is not None else (call.start_ns, call.start_ns)
    first_chunk_ns = server.start_ns + round(ttft_s * 1e9)
    marks = (server.start_ns, queued, left, call.start_ns, handler.start_ns, prefill.start_ns, prefill.end_ns,
             first_chunk_ns)
    stages = tuple((b - a) / 1e6 for a, b in zip(marks, marks[1:]))
    endpoint = str(server.attributes.get(attr.ENDPOINT, "unknown"))
    return server.start_ns, StagedRequest(endpoint=endpoint, ttft_ms=ttft_s * 1e3, stages_ms=stages)


def by_endpoint(requests: Sequence[StagedRequest]) -> list[EndpointStages]:
    groups: dict[str, list[StagedRequest]] = defaultdict(list)
    for r in requests:
        groups[r.endpoint].append(r)
    return [EndpointStages(endpoint=name, num_requests=len(rs), ttft_p50_ms=statistics.median(r.ttft_ms for r in rs),
                           stage_p50_ms=tuple(statistics.median(r.stages_ms[i] for r in rs)
                                              for i in range(len(STAGES))))
            for name, rs in sorted(groups.items())]
