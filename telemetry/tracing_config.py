"""How a Laneway process traces: on or off, sampling, where spans go, whether text is kept.

Read once at start-up from the standard OpenTelemetry variables plus a few Laneway ones,
so a collector set up for any OTel service also receives Laneway's spans:

  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT   a collector: export OTLP there
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL   grpc | http/protobuf (default)
  LANEWAY_TRACE_SAMPLE_RATIO, else OTEL_TRACES_SAMPLER_ARG           share of new traces kept, 0..1
  LANEWAY_TRACING=off, OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none   no tracing at all
  LANEWAY_DATA_DIR                                                   without a collector: JSON lines
                                                                     under DIR/traces (default .laneway)
  LANEWAY_TRACE_CONTENT=1, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
                                                                     record prompt and completion text

A bad value is an error naming the variable, never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_DATA_DIR = Path(".laneway")
PROTOCOLS = ("grpc", "http/protobuf")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class TracingConfigError(ValueError):
    """A tracing setting in the environment or config cannot be used; names the setting."""


@dataclass(frozen=True)
class TracingConfig:
    service_name: str
    is_enabled: bool = True
    sample_ratio: float = 1.0  # parent-based: a sampled (or unsampled) caller decides for us
    otlp_endpoint: str | None = None  # None: JSON lines to a file under data_dir/traces
    otlp_protocol: str = "http/protobuf"
    data_dir: Path = DEFAULT_DATA_DIR
    record_content: bool = False  # prompt and completion text in spans: off unless asked for
    # Tests hand in an exporter (e.g. in-memory) instead of OTLP or a file.
    span_exporter: SpanExporter | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise TracingConfigError(f"trace sample ratio must be between 0 and 1, got {self.sample_ratio}")
        if self.otlp_protocol not in PROTOCOLS:
            raise TracingConfigError(f"OTLP protocol must be one of {', '.join(PROTOCOLS)}, "
                                     f"got {self.otlp_protocol!r}")

    @property
    def trace_dir(self) -> Path:
        return self.data_dir / "traces"

    def trace_file(self, pid: int | None = None) -> Path:
        """Where this process writes spans when no collector is configured."""
        return self.trace_dir / f"{self.service_name}-{os.getpid() if pid is None else pid}.jsonl"

    @classmethod
    def disabled(cls, service_name: str) -> TracingConfig:
        return cls(service_name=service_name, is_enabled=False)

    @classmethod
    def from_env(cls, service_name: str, env: Mapping[str, str] | None = None) -> TracingConfig:
        env = os.environ if env is None else env
        enabled = (_flag(env, "LANEWAY_TRACING", default=True)
                   and not _flag(env, "OTEL_SDK_DISABLED", default=False)
                   and env.get("OTEL_TRACES_EXPORTER", "").strip().lower() != "none")
        endpoint, endpoint_var = _first(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        protocol, _ = _first(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
        protocol = protocol or "http/protobuf"
        if endpoint and protocol == "http/protobuf" and endpoint_var == "OTEL_EXPORTER_OTLP_ENDPOINT":
            # The generic variable names the collector; the signal path is ours to add (OTel spec).
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return cls(
            service_name=service_name,
            is_enabled=enabled,
            sample_ratio=_ratio(env),
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,
            data_dir=Path(env.get("LANEWAY_DATA_DIR") or DEFAULT_DATA_DIR),
            record_content=(_flag(env, "LANEWAY_TRACE_CONTENT", default=False)
                            or _flag(env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", default=False)),
        )


def _first(env: Mapping[str, str], *names: str) -> tuple[str | None, str | None]:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return None, None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TracingConfigError(f"{name}={env[name]!r}: expected one of {sorted(_TRUE | _FALSE)}")


def _ratio(env: Mapping[str, str]) -> float:
    value, name = _first(env, "LANEWAY_TRACE_SAMPLE_RATIO", "OTEL_TRACES_SAMPLER_ARG")
    if value is None:
        return 1.0
    try:
        ratio = float(value)
    except ValueError:
        raise TracingConfigError(f"{name}={value!r}: expected a number between 0 and 1") from None
    if not 0.0 <= ratio <= 1.0:
        raise TracingConfigError(f"{name}={value!r}: expected a number between 0 and 1")
    return ratio
