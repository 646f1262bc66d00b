"""Gateway request spans written straight into a JSON lines trace file, with chosen numbers."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from telemetry import attributes as attr

_ids = itertools.count(1)
T0 = 1_800_000_000.0  # unix seconds


@dataclass(frozen=True)
class Req:
    endpoint: str
    lane: str
    start_s: float  # seconds after T0
    ttft_ms: float | None = 50.0
    queue_wait_ms: float | None = 5.0
    tbt_p95_ms: float | None = 10.0
    output_tokens: int = 10
    duration_s: float = 1.0
    outcome: str = attr.OK
    reject_reason: str | None = None
    window_ms: float | None = 2.0


def span_line(req: Req) -> str:
    n = next(_ids)
    a: dict[str, object] = {attr.OPERATION_NAME: "chat", attr.ENDPOINT: req.endpoint, attr.LANE: req.lane,
                            attr.OUTCOME: req.outcome, attr.USAGE_OUTPUT_TOKENS: req.output_tokens}
    if req.ttft_ms is not None:
        a[attr.RESPONSE_TIME_TO_FIRST_CHUNK] = req.ttft_ms / 1000.0
    for key, value in ((attr.QUEUE_WAIT_MS, req.queue_wait_ms),
                       (attr.TBT_P95_MS, req.tbt_p95_ms), (attr.REJECT_REASON, req.reject_reason),
                       (attr.BATCH_WINDOW_MS, req.window_ms)):
        if value is not None:
            a[key] = value
    start_ns = int((T0 + req.start_s) * 1e9)
    return json.dumps({"trace_id": f"{n:032x}", "span_id": f"{n:016x}", "parent_span_id": None, "name": "chat m",
                       "kind": "SERVER", "scope": attr.GATEWAY_SCOPE, "service": "laneway-gateway",
                       "start_ns": start_ns, "end_ns": start_ns + int(req.duration_s * 1e9), "status": "UNSET",
                       "status_message": None, "attributes": a})


def write_trace(path: Path, reqs: list[Req]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(span_line(r) + "\n" for r in reqs))
    return path
