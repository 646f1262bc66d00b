"""Resources the gateway's lifespan owns, reached by handlers through typed state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig
from gateway.model_catalog import ModelCatalog
from gateway.policy_store import PolicyStore
from gateway.ratelimit import RateLimiter
from gateway.service import GenerationService
from gateway.telemetry import GatewayTelemetry
from gateway.worker_pool import WorkerPool

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gateway.batches.batch_store import BatchStore
    from gateway.batches.runner import BatchRunner


@dataclass
class GatewayState:
    config: GatewayConfig
    policy_store: PolicyStore
    pool: WorkerPool
    service: GenerationService
    catalog: ModelCatalog  # the served model's names and prompt token estimates
    redis: Redis | None = None  # None: no Redis URL configured
    limiter: RateLimiter = field(default_factory=RateLimiter)  # without Redis: no limits
    batches: BatchStore | None = None  # the Batch API's files and batches; None without Redis
    batch_runner: BatchRunner | None = None  # this gateway's share of the batch work
    is_draining: bool = False  # SIGTERM received: /readyz says 503 while requests finish (server.py)

    @property
    def telemetry(self) -> GatewayTelemetry:
        return self.service.telemetry  # one owner: the service reports to it, /metrics reads it
