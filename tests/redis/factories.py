"""Policies, gateway configs and in-process gateways for the Redis-backed features."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import yaml

from gateway.app import create_app
from gateway.batches.api import RedisBatchApi
from gateway.batches.runner import BatchRunner
from gateway.config import GatewayConfig
from gateway.state import GatewayState
from lanes.policy import hash_api_key

ALPHA_KEY = "sk-alpha-test"  # tenant alpha: limited (rpm/tpm from make_policy)
BETA_KEY = "sk-beta-test"  # tenant beta: no limits
ALPHA = {"Authorization": f"Bearer {ALPHA_KEY}"}
BETA = {"Authorization": f"Bearer {BETA_KEY}"}


def make_policy(tmp: Path, *, rpm: int | None = 1000, tpm: int | None = 1_000_000, bulk_max_tokens: int = 64,
                name: str = "policy.yaml") -> Path:
    """chat (fails open), strict (fails closed), labeling (bulk lane); tenants alpha (limited), beta."""
    alpha: dict = {"keys_sha256": [hash_api_key(ALPHA_KEY)], "endpoints": "*"}
    if rpm is not None:
        alpha["rpm"] = rpm
    if tpm is not None:
        alpha["tpm"] = tpm
    policy = {
        "version": 1,
        "default_endpoint": "chat",
        "lanes": {
            "interactive": {"priority": 0, "batch_window_ms": 1, "max_batch_size": 16, "max_queue_depth": 1000,
                            "max_queue_wait_ms": 10_000},
            "bulk": {"priority": 2, "batch_window_ms": 2, "max_batch_size": 32, "max_queue_depth": 10_000,
                     "max_queue_wait_ms": 86_400_000, "preemptible": True, "backfill": True},
        },
        "endpoints": {
            "chat": {"lane": "interactive", "on_redis_unavailable": "open"},
            "strict": {"lane": "interactive", "on_redis_unavailable": "closed"},
            "labeling": {"lane": "bulk", "limits": {"max_tokens": bulk_max_tokens}},
        },
        "tenants": {
            "alpha": alpha,
            "beta": {"keys_sha256": [hash_api_key(BETA_KEY)], "endpoints": "*"},
        },
        "auth": {"required": True},
    }
    path = tmp / name
    path.write_text(yaml.safe_dump(policy))
    return path


def make_config(policy: Path, workers: list[str], redis_url: str | None, **overrides) -> GatewayConfig:
    base = GatewayConfig(worker_addresses=tuple(workers), policy_path=policy, redis_url=redis_url,
                         worker_refresh_interval_s=0.2, registry_poll_interval_s=0.2)
    return dataclasses.replace(base, **overrides)


@contextlib.asynccontextmanager
async def gateway_app(config: GatewayConfig) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayState]]:
    """A whole gateway in this process (lifespan included), reached through ASGI."""
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
            yield client, app.state.laneway


def runner_of(state: GatewayState) -> BatchRunner:
    """The gateway's batch runner (only a gateway with a Redis URL has one)."""
    batches = state.batches
    assert isinstance(batches, RedisBatchApi), f"this gateway has no Batch API runner: {batches!r}"
    return batches.runner
