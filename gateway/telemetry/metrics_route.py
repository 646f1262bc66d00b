"""GET /metrics: the gateway's registry in Prometheus text format."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response


async def metrics(request: Request) -> Response:
    # Rendered on the event loop on purpose: the lane gauges read the dispatcher, which
    # only that loop may touch. Rendering a few hundred series takes well under a millisecond.
    registry = request.app.state.laneway.telemetry.metrics.registry
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
