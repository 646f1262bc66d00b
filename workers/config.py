"""What one worker process serves and how: the frozen config `laneway worker` is started with.

Kept apart from the process entry point (workers/main.py) so the simulator, the planner
and in-process tools build a WorkerConfig without importing grpc servers or signal
handling. Component configs (scheduler, KV cache) live beside their components in
workers/engine/config.py; this one only bundles them with the process's own settings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.engine.config import CacheConfig, SchedulerConfig

if TYPE_CHECKING:  # only an annotation here: the tracing stack loads when a worker starts serving
    from telemetry import TracingConfig

SIM_PREFIX = "sim:"  # --model sim:PRESET (or sim:PATH.json): a SIMULATED worker (workers/sim)


def is_sim_model(spec: str) -> bool:
    """True for a model spec (or a served model's name) that names a simulated worker."""
    return spec.startswith(SIM_PREFIX)


@dataclass(frozen=True)
class WorkerConfig:
    model: str = "tiny"
    host: str = "127.0.0.1"
    port: int = 50051
    dtype: str | None = None  # None: the model's own (presets: tiny float32, small bfloat16)
    device: str = "auto"  # auto: cuda when torch sees a GPU, else cpu; or any torch device ("cuda:1")
    scheduler: SchedulerConfig = SchedulerConfig(max_model_len=None)  # None: auto (workers/context_length.py)
    cache: CacheConfig = CacheConfig()
    num_threads: int | None = None
    drain_timeout_s: float = 10.0  # running streams get this long after the server stops accepting RPCs
    drain_delay_s: float = 0.0  # before that, NOT_SERVING + refusing new work while health probes still answer
    registry_url: str | None = None  # Redis to announce this worker in (gateways discover it there)
    advertise: str | None = None  # host:port gateways should dial; default host:port above
    registry_ttl_s: float = 6.0  # a worker silent this long leaves the gateways' rotation
    metrics_port: int = 0  # Prometheus /metrics on host:metrics_port; 0: not served
    tracing: TracingConfig | None = None  # None: from the environment (OTEL_*, LANEWAY_TRACE_*)
    step_cost: str = "auto"  # auto: fit from the warm-up; off: plan by tokens; or a saved cost JSON


def parse_size(text: str) -> int:
    """'64MB', '1.5GiB', '1000000' -> bytes (an argparse `type=`: bad text is a usage error)."""
    units = {"k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
             "g": 10**9, "gb": 10**9, "gib": 2**30, "": 1, "b": 1}
    t = text.strip().lower()
    num = t.rstrip("abgikm")
    unit = t[len(num):]
    try:
        if unit not in units:
            raise ValueError(unit)
        size = float(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read size {text!r}; use e.g. 512MB or 2GiB") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return int(size * units[unit])
