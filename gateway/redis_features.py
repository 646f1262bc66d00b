"""What a Redis URL turns on: rate limits, the Batch API and its runner, the worker registry.

Set up before the gateway's state is built, so the state is complete from its first
moment. Without a Redis URL the gateway serves its static workers with `NoLimits` and a
`DisabledBatchApi` whose routes answer 503 naming the missing Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.batches.api import BatchApi, DisabledBatchApi, RedisBatchApi
from gateway.batches.batch_store import BatchStore
from gateway.batches.runner import BatchRunner
from gateway.config import GatewayConfig
from gateway.model_catalog import ModelCatalog
from gateway.policy_store import PolicyStore
from gateway.ratelimit import Limiter, NoLimits, RateLimiter
from gateway.redis_client import connect
from gateway.registry_watch import RegistryWatch
from gateway.service import GenerationService
from gateway.worker_pool import WorkerPool


@dataclass(frozen=True)
class RedisFeatures:
    limiter: Limiter
    batches: BatchApi  # its runner is not started yet: the lifespan starts it once the state is built


@contextlib.asynccontextmanager
async def redis_features(config: GatewayConfig, pool: WorkerPool, policy_store: PolicyStore,
                         catalog: ModelCatalog, service: GenerationService) -> AsyncIterator[RedisFeatures]:
    if config.redis_url is None:
        yield RedisFeatures(NoLimits(), DisabledBatchApi())
        return
    redis = connect(config.redis_url, config.redis_timeout_s)
    limiter = RateLimiter(redis)
    store = BatchStore(redis, file_ttl_s=config.file_ttl_s)
    runner = BatchRunner(store, policy_store, catalog, service, concurrency=config.batch_concurrency,
                         claim_idle_s=config.batch_claim_idle_s)
    watch = RegistryWatch(redis, pool, config.registry_poll_interval_s)
    await watch.start()
    try:
        yield RedisFeatures(limiter, RedisBatchApi(store, runner))
    finally:
        await runner.close()
        await watch.stop()
        await limiter.idle()
        await redis.aclose()
