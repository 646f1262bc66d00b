"""Tracing settings from the environment: standard OTel variables, Laneway's own, and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry import TracingConfig, TracingConfigError
from telemetry.span_file import SpanFileExporter
from telemetry.tracer_provider import build_exporter, build_tracer_provider


def test_defaults_trace_everything_to_a_file_in_the_data_dir() -> None:
    c = TracingConfig.from_env("laneway-gateway", {})
    assert (c.is_enabled, c.sample_ratio, c.otlp_endpoint, c.record_content) == (True, 1.0, None, False)
    assert c.trace_file(pid=42) == Path(".laneway/traces/laneway-gateway-42.jsonl")
    c = TracingConfig.from_env("laneway-worker", {"LANEWAY_DATA_DIR": "/srv/lw"})
    assert c.trace_file(pid=7) == Path("/srv/lw/traces/laneway-worker-7.jsonl")


@pytest.mark.parametrize("env", [{"LANEWAY_TRACING": "off"}, {"OTEL_SDK_DISABLED": "true"},
                                 {"OTEL_TRACES_EXPORTER": "none"}])
def test_tracing_can_be_switched_off(env: dict[str, str]) -> None:
    config = TracingConfig.from_env("laneway-gateway", env)
    assert not config.is_enabled
    assert build_tracer_provider(config) is None


def test_sample_ratio_prefers_laneways_variable() -> None:
    assert TracingConfig.from_env("g", {"OTEL_TRACES_SAMPLER_ARG": "0.25"}).sample_ratio == 0.25
    assert TracingConfig.from_env("g", {"OTEL_TRACES_SAMPLER_ARG": "0.25",
                                        "LANEWAY_TRACE_SAMPLE_RATIO": "0.5"}).sample_ratio == 0.5


@pytest.mark.parametrize(("env", "named"), [({"LANEWAY_TRACE_SAMPLE_RATIO": "1.5"}, "LANEWAY_TRACE_SAMPLE_RATIO"),
                                            ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
                                            ({"LANEWAY_TRACING": "maybe"}, "LANEWAY_TRACING"),
                                            ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                                              "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "OTLP protocol")])
def test_bad_values_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(TracingConfigError, match=named):
        TracingConfig.from_env("g", env)


def test_collector_endpoint_and_protocol() -> None:
    http = TracingConfig.from_env("g", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert (http.otlp_protocol, http.otlp_endpoint) == ("http/protobuf", "http://collector:4318/v1/traces")
    signal = TracingConfig.from_env("g", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom",
                                          "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"})
    assert signal.otlp_endpoint == "http://c:4318/custom"  # the per-signal variable is used as given
    grpc = TracingConfig.from_env("g", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                                        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert (grpc.otlp_protocol, grpc.otlp_endpoint) == ("grpc", "http://collector:4317")


def test_content_recording_is_opt_in() -> None:
    assert TracingConfig.from_env("g", {"LANEWAY_TRACE_CONTENT": "1"}).record_content
    assert TracingConfig.from_env("g", {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}).record_content


def test_without_a_collector_spans_go_to_a_file(tmp_path: Path) -> None:
    exporter = build_exporter(TracingConfig(service_name="laneway-gateway", data_dir=tmp_path))
    assert isinstance(exporter, SpanFileExporter)
    assert exporter.path.parent == tmp_path / "traces"
