"""With a collector configured, spans leave as OTLP over HTTP or gRPC (to local fake collectors)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as ts_grpc

from laneway.procs import free_port
from telemetry import TracingConfig, build_tracer_provider


def _export_one_span(config: TracingConfig) -> None:
    provider = build_tracer_provider(config)
    assert provider is not None
    provider.get_tracer("laneway.gateway").start_span("chat tiny").end()
    provider.shutdown()  # flushes: the batch processor sends before returning


def _names(requests: list[ts.ExportTraceServiceRequest]) -> list[tuple[str, str]]:
    out = []
    for req in requests:
        for rs in req.resource_spans:
            service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            out += [(service, span.name) for ss in rs.scope_spans for span in ss.spans]
    return out


@pytest.fixture
def http_collector() -> Iterator[tuple[str, list[ts.ExportTraceServiceRequest]]]:
    received: list[ts.ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
                received.append(ts.ExportTraceServiceRequest.FromString(body))
            reply = ts.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_collector() -> Iterator[tuple[str, list[ts.ExportTraceServiceRequest]]]:
    received: list[ts.ExportTraceServiceRequest] = []

    class Collector(ts_grpc.TraceServiceServicer):
        def Export(self, request: ts.ExportTraceServiceRequest, context: grpc.ServicerContext
                   ) -> ts.ExportTraceServiceResponse:
            received.append(request)
            return ts.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ts_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield f"http://127.0.0.1:{port}", received
    server.stop(0)


def test_otlp_http(http_collector: tuple[str, list[ts.ExportTraceServiceRequest]]) -> None:
    base, received = http_collector
    _export_one_span(TracingConfig.from_env("laneway-gateway", {"OTEL_EXPORTER_OTLP_ENDPOINT": base}))
    assert _names(received) == [("laneway-gateway", "chat tiny")]


def test_otlp_grpc(grpc_collector: tuple[str, list[ts.ExportTraceServiceRequest]]) -> None:
    base, received = grpc_collector
    _export_one_span(TracingConfig.from_env("laneway-worker", {"OTEL_EXPORTER_OTLP_ENDPOINT": base,
                                                                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}))
    assert _names(received) == [("laneway-worker", "chat tiny")]
