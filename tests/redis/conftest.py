from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.redis_client import connect
from tests.support.redis_server import TestRedis, redis_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[TestRedis]:
    """A private redis-server for this test (never the system one on 6379)."""
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
async def clients(redis: TestRedis) -> AsyncIterator[Callable[..., Redis]]:
    """Make gateway-style Redis clients (each with its own pool); all closed at teardown."""
    made: list[Redis] = []

    def make(**kwargs) -> Redis:
        made.append(connect(redis.url, **kwargs))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()
