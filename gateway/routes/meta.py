"""Models list and health probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.state import GatewayState


async def models(request: Request) -> JSONResponse:
    state: GatewayState = request.app.state.laneway
    data = [{"id": state.catalog.model_name, "object": "model", "created": 0, "owned_by": "laneway"}]
    data += [{"id": name, "object": "model", "created": 0, "owned_by": "laneway", "laneway_endpoint": True}
             for name in sorted(state.policy_store.policy.endpoints)]
    return JSONResponse({"object": "list", "data": data})


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: at least one worker answers its health check, and no SIGTERM yet (a
    draining gateway still serves what it has, but load balancers must stop sending more)."""
    state: GatewayState = request.app.state.laneway
    healthy = [w.address for w in state.pool.healthy()]
    status = "draining" if state.is_draining else ("ready" if healthy else "not ready")
    body = {"status": status, "healthy_workers": healthy, "workers": [w.address for w in state.pool.workers]}
    return JSONResponse(body, status_code=200 if status == "ready" else 503)
