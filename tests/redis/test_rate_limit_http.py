"""Rate limits through whole gateways: two replicas share one Redis, headers on every response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.redis.factories import ALPHA, BETA, gateway_app, make_config, make_policy
from tests.redis.fake_worker import STOP_EARLY, RunningFake, start_fake_worker
from tests.support.redis_server import TestRedis

pytestmark = pytest.mark.anyio
LIMIT_HEADERS = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
                 "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    worker = await start_fake_worker()
    yield worker
    await worker.server.stop(0)


def _sample(exposition: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in exposition.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, f"{name} not exposed exactly once"
    return values[0]


def _completion(prompt: str = "hello", max_tokens: int = 4) -> dict:
    return {"prompt": prompt, "max_tokens": max_tokens}


async def test_two_replicas_admit_at_most_the_limit_between_them(redis: TestRedis, fake: RunningFake,
                                                                 tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path, rpm=12), [fake.address], redis.url)
    async with gateway_app(config) as (a, _), gateway_app(config) as (b, _):
        responses = await asyncio.gather(*(
            (a if i % 2 else b).post("/v1/completions", json=_completion(f"p{i}"), headers=ALPHA)
            for i in range(40)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == 12 and len(refused) == 28
    assert sum(fake.servicer.prompts.values()) == 12, "refused requests must never reach a worker"
    for r in refused:
        assert r.headers["x-laneway-reject-reason"] == "rate-limit"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert LIMIT_HEADERS <= set(r.headers) and r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.json()["error"]["type"] == "rate_limit_error"
    for r in ok:
        assert LIMIT_HEADERS <= set(r.headers) and r.headers["x-ratelimit-limit-requests"] == "12"
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(12))


async def test_headers_on_success_and_streams_only_for_limited_tenants(redis: TestRedis, fake: RunningFake,
                                                                       tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path, rpm=50, tpm=5000), [fake.address], redis.url)
    async with gateway_app(config) as (client, _):
        r = await client.post("/v1/completions", json=_completion(), headers=ALPHA)
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "49"
        assert r.headers["x-ratelimit-limit-tokens"] == "5000"
        assert int(r.headers["x-ratelimit-remaining-tokens"]) == 5000 - len("hello") - 4
        async with client.stream("POST", "/v1/chat/completions", headers=ALPHA, json={
                "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}) as s:
            assert s.status_code == 200 and s.headers["x-ratelimit-remaining-requests"] == "48"
            assert "[DONE]" in "".join([line async for line in s.aiter_lines()])
        unlimited = await client.post("/v1/completions", json=_completion(), headers=BETA)
        assert unlimited.status_code == 200 and not LIMIT_HEADERS & set(unlimited.headers)


async def test_unused_tokens_are_given_back_when_the_request_ends(redis: TestRedis, fake: RunningFake,
                                                                  tmp_path: Path) -> None:
    # Each request reserves prompt + 60 tokens of a budget of 100; the worker stops after 2.
    config = make_config(make_policy(tmp_path, rpm=None, tpm=100), [fake.address], redis.url)
    async with gateway_app(config) as (client, state):
        first = await client.post("/v1/completions", json=_completion(STOP_EARLY, 60), headers=ALPHA)
        assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] == 2
        await state.limiter.idle()
        second = await client.post("/v1/completions", json=_completion(STOP_EARLY, 60), headers=ALPHA)
        assert second.status_code == 200, "the first request's unused reservation was not released"
        used = len(STOP_EARLY) + 2
        assert int(second.headers["x-ratelimit-remaining-tokens"]) == 100 - used - (len(STOP_EARLY) + 60)


async def test_redis_outage_fails_open_or_closed_per_endpoint_then_recovers(redis: TestRedis, fake: RunningFake,
                                                                            tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path, rpm=1000), [fake.address], redis.url, redis_timeout_s=0.3)
    async with gateway_app(config) as (client, state):
        chat, strict = "/v1/endpoints/chat/completions", "/v1/endpoints/strict/completions"
        assert (await client.post(strict, json=_completion(), headers=ALPHA)).status_code == 200
        statuses: list[int] = []
        stop = asyncio.Event()

        async def traffic() -> None:  # the fail-open endpoint under load through the whole outage
            while not stop.is_set():
                statuses.append((await client.post(chat, json=_completion(), headers=ALPHA)).status_code)
                await asyncio.sleep(0.01)

        load = asyncio.create_task(traffic())
        await asyncio.sleep(0.1)
        redis.kill()
        opened = await client.post(chat, json=_completion(), headers=ALPHA)
        assert opened.status_code == 200 and not LIMIT_HEADERS & set(opened.headers)
        closed = await client.post(strict, json=_completion(), headers=ALPHA)
        assert closed.status_code == 503 and closed.headers["retry-after"] == "1"
        assert "Redis" in closed.json()["error"]["message"]
        assert state.limiter.num_unchecked >= 1 and state.limiter.num_refused_unavailable >= 1
        scraped = (await client.get("/metrics")).text
        assert _sample(scraped, "laneway_ratelimit_unchecked_requests_total") >= 1
        assert _sample(scraped, "laneway_ratelimit_unavailable_refusals_total") == state.limiter.num_refused_unavailable
        redis.start()
        deadline = time.monotonic() + 5
        while (r := await client.post(strict, json=_completion(), headers=ALPHA)).status_code != 200:
            assert time.monotonic() < deadline, f"never recovered: {r.status_code} {r.text}"
            await asyncio.sleep(0.1)
        assert r.headers["x-ratelimit-limit-requests"] == "1000"  # checked against Redis again
        stop.set()
        await load
    assert len(statuses) > 10 and set(statuses) == {200}, "a fail-open endpoint must keep serving"
