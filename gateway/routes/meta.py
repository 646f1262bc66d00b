"""Models (list and retrieve) and health probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.errors import APIError
from gateway.intake import endpoint_name
from gateway.state import GatewayState


async def models(request: Request) -> JSONResponse:
    """Exactly the names this URL's generation routes accept as `model`, the served model first."""
    state: GatewayState = request.app.state.laneway
    endpoint = endpoint_name(request, state.policy_store.policy)  # 404 for an unknown endpoint
    return JSONResponse({"object": "list",
                         "data": [_model(name, endpoint) for name in state.catalog.model_names(endpoint)]})


async def model(request: Request) -> JSONResponse:
    """One of those names, or 404 as OpenAI answers for a model that does not exist."""
    state: GatewayState = request.app.state.laneway
    endpoint = endpoint_name(request, state.policy_store.policy)
    name = request.path_params["model"]
    names = state.catalog.model_names(endpoint)
    if name not in names:
        raise APIError(404, f"model {name!r} does not exist; available: {', '.join(names)}",
                       type="not_found_error", param="model", code="model_not_found")
    return JSONResponse(_model(name, endpoint))


def _model(name: str, endpoint: str) -> dict:
    # laneway_endpoint: the policy endpoint a request naming this model is served by.
    return {"id": name, "object": "model", "created": 0, "owned_by": "laneway", "laneway_endpoint": endpoint}


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
