"""ASGI middleware giving every generation request its server span and its outcome.

Pure ASGI (not BaseHTTPMiddleware), so a streamed response is observed to its last byte
and a client that leaves mid-stream is seen as a cancellation, not a success. Only POSTs
to .../completions are traced; /metrics, health probes and the Batch API's file routes
are not requests to a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.telemetry.request_trace import CURRENT, REJECT_REASON_HEADER

if TYPE_CHECKING:
    from gateway.telemetry.telemetry import GatewayTelemetry

_REJECT_REASON = REJECT_REASON_HEADER.encode()


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = _telemetry(scope)
        if telemetry is None:
            await self.app(scope, receive, send)
            return
        trace = telemetry.start_request(method=scope["method"], path=scope["path"], headers=scope["headers"])

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                reason = next((v.decode("latin-1") for k, v in message.get("headers", ()) if k == _REJECT_REASON),
                              None)
                trace.response_started(message["status"], reason)
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                trace.response_complete()

        token = CURRENT.set(trace)
        try:
            await self.app(scope, receive, observed_send)
        except BaseException as exc:
            trace.failed(exc)
            raise
        finally:
            CURRENT.reset(token)
            trace.end()


def _telemetry(scope: Scope) -> GatewayTelemetry | None:
    """The app's telemetry for a generation request; None for anything else (or before start-up)."""
    if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/completions"):
        return None
    app = scope.get("app")
    state = getattr(app.state, "laneway", None) if app is not None else None
    return getattr(state, "telemetry", None)
