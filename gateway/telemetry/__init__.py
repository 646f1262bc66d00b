"""Gateway traces and metrics: a server span per request, /metrics per endpoint and lane."""

from gateway.telemetry.middleware import TelemetryMiddleware
from gateway.telemetry.request_trace import RequestTrace
from gateway.telemetry.telemetry import GatewayTelemetry

__all__ = ["GatewayTelemetry", "RequestTrace", "TelemetryMiddleware"]
