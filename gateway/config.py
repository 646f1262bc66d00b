"""Gateway configuration: frozen, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from telemetry.tracing_config import TracingConfig

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


@dataclass(frozen=True)
class GatewayConfig:
    worker_addresses: tuple[str, ...] = ("127.0.0.1:50051",)
    policy_path: Path = DEFAULT_POLICY
    model_name: str | None = None
    use_lanes: bool = True  # False: the product-blind baseline (every request dispatched at once)
    # True: a worker's streams share one Session call (gateway/worker_session.py); False: a
    # Generate call per stream, the older wire (for comparing the two).
    worker_sessions: bool = True
    policy_poll_interval_s: float = 1.0
    worker_refresh_interval_s: float = 0.5
    max_body_bytes: int = 8 * 1024 * 1024  # larger request bodies get 413 (body_limits.py)
    request_body_timeout_s: float = 10.0  # a body stalled this long between reads gets 408
    # Redis (None: no rate limits, a Batch API that answers 503, only the static workers above).
    redis_url: str | None = None
    redis_timeout_s: float = 1.0  # short: a dead Redis must cost a request little (see redis_client)
    batch_concurrency: int = 8  # Batch API items this gateway runs at once
    batch_claim_idle_s: float = 30.0  # an item claimed by a gateway silent this long is taken over
    max_file_bytes: int = 200 * 1024 * 1024  # Batch API input files (OpenAI's limit)
    file_ttl_s: int = 30 * 24 * 3600  # Batch API files without expires_after (inputs and outputs) expire then
    max_tenant_file_bytes: int = 1024 * 1024 * 1024  # each tenant's Batch API storage quota (all its files)
    registry_poll_interval_s: float = 1.0  # how often the worker registry in Redis is read
    # None: from the environment at start-up (OTEL_* and LANEWAY_TRACE_* variables, see
    # telemetry/tracing_config.py); JSON lines under .laneway/traces without a collector.
    tracing: TracingConfig | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.worker_addresses or self.redis_url):
            raise ValueError("at least one worker address is required (or a Redis URL whose registry lists workers)")
        if self.file_ttl_s < 1 or self.max_tenant_file_bytes < 1:
            raise ValueError(f"file_ttl_s and max_tenant_file_bytes must be >= 1, got {self.file_ttl_s} and "
                             f"{self.max_tenant_file_bytes}")
        if self.batch_concurrency < 1:
            raise ValueError(f"batch_concurrency must be >= 1, got {self.batch_concurrency}")
