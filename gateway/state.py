"""Resources the gateway's lifespan owns, reached by handlers through typed state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig
from gateway.policy_store import PolicyStore
from gateway.ratelimit import RateLimiter
from gateway.service import GenerationService
from gateway.telemetry import GatewayTelemetry
from gateway.worker_pool import WorkerPool

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gateway.batches.batch_store import BatchStore
    from gateway.batches.runner import BatchRunner

BYTES_PER_TOKEN_GUESS = 4.0  # for subword vocabularies; byte-level models are exact (1.0)


@dataclass
class GatewayState:
    config: GatewayConfig
    policy_store: PolicyStore
    pool: WorkerPool
    service: GenerationService
    redis: Redis | None = None  # None: no Redis URL configured
    limiter: RateLimiter = field(default_factory=RateLimiter)  # without Redis: no limits
    batches: BatchStore | None = None  # the Batch API's files and batches; None without Redis
    batch_runner: BatchRunner | None = None  # this gateway's share of the batch work
    is_draining: bool = False  # SIGTERM received: /readyz says 503 while requests finish (server.py)

    @property
    def telemetry(self) -> GatewayTelemetry:
        return self.service.telemetry  # one owner: the service reports to it, /metrics reads it

    @property
    def model_name(self) -> str:
        for w in self.pool.workers:
            if w.info is not None:
                return w.info.model
        return self.config.model_name or "laneway"

    def model_names(self, endpoint: str) -> list[str]:
        # Clients may name the served model, the endpoint, or "laneway"; all route here.
        return sorted({self.model_name, endpoint, "laneway"})

    def estimate_tokens(self, num_bytes: int) -> int:
        """Prompt tokens before the worker tokenizes (admission and limits); the worker enforces
        the exact context length."""
        info = next((w.info for w in self.pool.workers if w.info is not None), None)
        per_token = 1.0 if info is not None and info.vocab_size <= 512 else BYTES_PER_TOKEN_GUESS
        return max(1, int(num_bytes / per_token))
