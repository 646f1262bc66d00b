"""Resources the gateway's lifespan owns, reached by handlers through typed state.

Built once, complete, by the lifespan (gateway/app.py) and never patched afterwards: the
Redis-backed features are set up before it, and a gateway without Redis holds their
stand-ins (`NoLimits`, `DisabledBatchApi`), so no handler checks for a missing one. The
only thing that changes is the drain flag, set once by `begin_drain()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.batches.api import BatchApi
from gateway.config import GatewayConfig
from gateway.model_catalog import ModelCatalog
from gateway.policy_store import PolicyStore
from gateway.ratelimit import Limiter
from gateway.service import GenerationService
from gateway.telemetry import GatewayTelemetry
from gateway.worker_pool import WorkerPool


class DrainFlag:
    """Set once, on SIGTERM: /readyz says 503 while requests finish (gateway/server.py)."""

    def __init__(self) -> None:
        self._is_set = False

    @property
    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> bool:
        """Set it; False if it already was."""
        was_set, self._is_set = self._is_set, True
        return not was_set


@dataclass(frozen=True)
class GatewayState:
    config: GatewayConfig
    policy_store: PolicyStore
    pool: WorkerPool
    service: GenerationService
    catalog: ModelCatalog  # the served model's names and prompt token estimates
    limiter: Limiter  # RateLimiter in Redis; NoLimits without a Redis URL
    batches: BatchApi  # the Batch API's files, batches and runner; DisabledBatchApi without Redis
    drain: DrainFlag = field(default_factory=DrainFlag)

    @property
    def telemetry(self) -> GatewayTelemetry:
        return self.service.telemetry  # one owner: the service reports to it, /metrics reads it

    @property
    def is_draining(self) -> bool:
        return self.drain.is_set

    async def begin_drain(self) -> bool:
        """Stage 1 of the drain: /readyz says 503 from now on, and the Batch API runner stops
        (its unfinished lines go back to Redis for another gateway). Serving goes on.
        False if the drain had already begun."""
        if not self.drain.set():
            return False
        await self.batches.close()
        return True

    async def refuse_queued(self) -> None:
        """Stage 2 of the drain: jobs still in a lane queue are refused with 503 + Retry-After."""
        await self.service.dispatcher.close()
