"""The requests of a run, read back from the gateway's server spans.

One gateway server span is one request; its attributes carry everything a review needs
(endpoint, lane, window, queue wait, TTFT, per-request TBT, tokens, outcome), so a
review needs neither the worker's spans nor the trace tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from telemetry import SpanRecord
from telemetry import attributes as attr


@dataclass(frozen=True)
class RequestRow:
    endpoint: str
    lane: str
    start_s: float  # unix seconds the gateway received it
    end_s: float
    outcome: str  # telemetry.attributes.OUTCOMES
    reject_reason: str | None = None
    queue_wait_ms: float | None = None  # None: never left the lane queue (or no lanes)
    ttft_ms: float | None = None  # None: no token ever arrived
    tbt_p95_ms: float | None = None  # this request's own p95 gap between chunks
    output_tokens: int = 0
    batch_window_ms: float | None = None


def request_rows(spans: Iterable[SpanRecord]) -> list[RequestRow]:
    rows = []
    for span in spans:
        a = span.attributes
        if span.scope != attr.GATEWAY_SCOPE or attr.OPERATION_NAME not in a or attr.OUTCOME not in a:
            continue  # a queue or dispatch span, or not the gateway's
        rows.append(RequestRow(
            endpoint=str(a.get(attr.ENDPOINT, "unknown")),
            lane=str(a.get(attr.LANE, "none")),
            start_s=span.start_s,
            end_s=span.end_s,
            outcome=str(a[attr.OUTCOME]),
            reject_reason=a.get(attr.REJECT_REASON),
            queue_wait_ms=_number(a.get(attr.QUEUE_WAIT_MS)),
            ttft_ms=_seconds_as_ms(a.get(attr.RESPONSE_TIME_TO_FIRST_CHUNK)),
            tbt_p95_ms=_number(a.get(attr.TBT_P95_MS)),
            output_tokens=int(a.get(attr.USAGE_OUTPUT_TOKENS, 0) or 0),
            batch_window_ms=_number(a.get(attr.BATCH_WINDOW_MS)),
        ))
    rows.sort(key=lambda r: r.start_s)
    return rows


def _seconds_as_ms(value: object) -> float | None:
    seconds = _number(value)
    return None if seconds is None else seconds * 1000.0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
