"""The Batch API as the gateway's state holds it: backed by Redis, or disabled without it.

Both answer the same three calls, so handlers never ask which one they have: `store()`
gives the files and batches or raises the OpenAI-style 503 that says why there are none;
`start()` and `close()` run this gateway's share of the batch work, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.errors import APIError

if TYPE_CHECKING:
    from gateway.batches.batch_store import BatchStore
    from gateway.batches.runner import BatchRunner


class BatchApi(Protocol):
    def store(self) -> BatchStore:
        """The Batch API's files and batches; APIError(503) when this gateway has none."""
        ...

    def start(self) -> None:
        """Start working batches (once the gateway's state is complete)."""
        ...

    async def close(self) -> None:
        """Stop working batches; lines in flight go back to Redis for another gateway."""
        ...


@dataclass(frozen=True)
class RedisBatchApi:
    batch_store: BatchStore
    runner: BatchRunner  # this gateway's share of the batch work

    def store(self) -> BatchStore:
        return self.batch_store

    def start(self) -> None:
        self.runner.start()

    async def close(self) -> None:
        await self.runner.close()


class DisabledBatchApi:
    """No Redis URL configured: every Batch API route answers 503 naming what is missing."""

    def store(self) -> BatchStore:
        raise APIError(503, "the Batch API needs Redis, and this gateway has none; start it with --redis-url "
                            "(or LANEWAY_REDIS_URL), or use `laneway serve`, which starts one",
                       type="service_unavailable", code="redis_not_configured")

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
