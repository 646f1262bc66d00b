"""A real gateway app (lanes, dispatcher, telemetry) in front of a fake worker, for in-process tests."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.telemetry import GatewayTelemetry
from telemetry import TracingConfig
from tests.telemetry.fake_worker import FakeWorker


def make_app(worker: FakeWorker, exporter: SpanExporter | None = None, *, sample_ratio: float = 1.0,
             record_content: bool = False, use_lanes: bool = True) -> Starlette:
    tracing = (TracingConfig(service_name="laneway-gateway", sample_ratio=sample_ratio,
                             record_content=record_content, span_exporter=exporter)
               if exporter is not None else TracingConfig.disabled("laneway-gateway"))
    return create_app(GatewayConfig(worker_addresses=(worker.address,), tracing=tracing, use_lanes=use_lanes))


def telemetry_of(client: TestClient) -> GatewayTelemetry:
    return client.app.state.laneway.telemetry  # type: ignore[attr-defined]
