"""The sliding-log limiter against a real Redis: atomic under concurrency, exact, settled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from gateway.errors import APIError
from gateway.job import Job, LaneTicket, Sampling
from gateway.ratelimit import NoLimits, RateLimiter
from gateway.ratelimit.headers import format_duration, ratelimit_headers
from gateway.ratelimit.limiter import BREAKER_S, _refusal_message
from gateway.ratelimit.scope import Scope
from gateway.ratelimit.sliding_log import SlidingLog, Verdict
from gateway.redis_breaker import RedisBreaker
from lanes.policy import load_policy
from tests.redis.factories import make_policy
from tests.support.redis_server import TestRedis

pytestmark = pytest.mark.anyio
Clients = Callable[..., Redis]


def _job(tenant: str = "alpha", endpoint: str = "chat", prompt_tokens: int = 10, max_tokens: int = 20) -> Job:
    return Job(endpoint=endpoint, tenant=tenant, kind="completion", prompt="x", sampling=Sampling(max_tokens),
               lane=LaneTicket("interactive", 0, False), stream=False, prompt_tokens_estimate=prompt_tokens)


async def test_two_clients_racing_admit_exactly_the_limit(clients: Clients) -> None:
    logs = [SlidingLog(clients()), SlidingLog(clients())]  # two "gateways": separate connection pools
    scope = Scope("tenant 'alpha'", "lw:rl:{alpha}", rpm=25, tpm=None)

    async def attempt(i: int) -> bool:
        return (await logs[i % 2].admit((scope,), f"r{i}", 1)).is_admitted

    results = await asyncio.gather(*(attempt(i) for i in range(200)))
    assert sum(results) == 25
    assert sum(results[0::2]) > 0 and sum(results[1::2]) > 0, "both clients should have won some"


async def test_token_budget_is_exact_under_concurrency(clients: Clients) -> None:
    logs = [SlidingLog(clients()), SlidingLog(clients())]
    scope = Scope("tenant 'alpha'", "lw:rl:{alpha}", rpm=None, tpm=1000)
    results = await asyncio.gather(*(logs[i % 2].admit((scope,), f"r{i}", 30) for i in range(100)))
    assert sum(v.is_admitted for v in results) == 1000 // 30
    refused = [v for v in results if not v.is_admitted]
    assert all(0 < v.retry_after_ms <= 60_000 and not v.is_too_large for v in refused)


async def test_settling_releases_the_unused_reservation(clients: Clients) -> None:
    log = SlidingLog(clients())
    scope = Scope("t", "lw:rl:{t}", rpm=None, tpm=100)
    assert (await log.admit((scope,), "a", 60)).is_admitted
    assert not (await log.admit((scope,), "b", 60)).is_admitted
    await log.settle((scope,), "a", 15)  # it used 15 of the 60 it reserved
    verdict = await log.admit((scope,), "b", 60)
    assert verdict.is_admitted and verdict.usage[0].num_tokens == 75
    await log.settle((scope,), "b", 90)  # used more than reserved (low prompt estimate): counted
    over = await log.admit((scope,), "c", 1)
    assert not over.is_admitted and over.usage[0].num_tokens == 105


async def test_requests_leave_the_window_and_make_room(clients: Clients) -> None:
    log = SlidingLog(clients(), window_ms=400)
    scope = Scope("t", "lw:rl:{t}", rpm=2, tpm=None)
    assert (await log.admit((scope,), "a", 1)).is_admitted
    assert (await log.admit((scope,), "b", 1)).is_admitted
    refused = await log.admit((scope,), "c", 1)
    assert not refused.is_admitted and 0 < refused.retry_after_ms <= 400
    await asyncio.sleep(refused.retry_after_ms / 1000 + 0.05)
    assert (await log.admit((scope,), "c", 1)).is_admitted


async def test_scopes_are_checked_together_and_written_only_if_all_have_room(clients: Clients) -> None:
    client = clients()
    log = SlidingLog(client)
    wide = Scope("wide", "lw:rl:{t}:wide", rpm=10, tpm=None)
    narrow = Scope("narrow", "lw:rl:{t}:narrow", rpm=1, tpm=None)
    assert (await log.admit((wide, narrow), "a", 1)).is_admitted
    verdict = await log.admit((wide, narrow), "b", 1)
    assert not verdict.is_admitted and verdict.blocking == narrow
    assert await client.zcard(wide.log_key) == 1, "a refused request must leave no trace in any scope"
    assert ratelimit_headers(verdict.usage)["x-ratelimit-limit-requests"] == "1"  # the tighter scope shows


async def test_limiter_refuses_with_429_headers_and_names_the_tenant(clients: Clients, tmp_path) -> None:
    policy = load_policy(make_policy(tmp_path, rpm=1, tpm=500))
    limiter = RateLimiter(clients())
    first = await limiter.admit(_job(), policy)
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-remaining-tokens"] == "470"
    with pytest.raises(APIError) as refused:
        await limiter.admit(_job(), policy)
    err = refused.value
    assert err.status == 429 and "alpha" in err.message and "1 requests per minute" in err.message
    assert err.headers["x-laneway-reject-reason"] == "rate-limit"
    assert 1 <= int(err.headers["Retry-After"]) <= 60
    assert err.headers["x-ratelimit-limit-requests"] == "1"
    for _ in range(3):  # beta has no limits: always admitted, no headers
        assert (await limiter.admit(_job(tenant="beta"), policy)).headers == {}


async def test_a_request_larger_than_the_budget_says_so(clients: Clients, tmp_path) -> None:
    policy = load_policy(make_policy(tmp_path, rpm=None, tpm=100))
    with pytest.raises(APIError) as refused:
        await RateLimiter(clients()).admit(_job(prompt_tokens=50, max_tokens=60), policy)
    assert refused.value.status == 429 and "more than the 100 tokens per minute" in refused.value.message


async def test_without_redis_there_are_no_limits(tmp_path) -> None:
    policy = load_policy(make_policy(tmp_path, rpm=1))
    limiter = NoLimits()
    for _ in range(3):
        assert (await limiter.admit(_job(), policy)).headers == {}


async def test_redis_down_fails_open_or_closed_per_endpoint_then_recovers(redis: TestRedis, clients: Clients,
                                                                          tmp_path) -> None:
    policy = load_policy(make_policy(tmp_path, rpm=100))
    limiter = RateLimiter(clients(timeout_s=0.3))
    assert (await limiter.admit(_job(), policy)).headers
    redis.kill()
    assert (await limiter.admit(_job(endpoint="chat"), policy)).headers == {}  # open: served, unchecked
    assert limiter.num_unchecked == 1
    with pytest.raises(APIError) as refused:
        await limiter.admit(_job(endpoint="strict"), policy)
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    redis.start()
    deadline = time.monotonic() + 5
    while True:  # recovery needs no new client: the breaker reopens and the pool reconnects
        try:
            reservation = await limiter.admit(_job(endpoint="strict"), policy)
            break
        except APIError:
            assert time.monotonic() < deadline, "limiter never recovered after Redis came back"
            await asyncio.sleep(0.1)
    assert reservation.headers["x-ratelimit-limit-requests"] == "100"


async def test_after_an_outage_one_request_probes_redis_and_the_others_decide_at_once(
        redis: TestRedis, clients: Clients, tmp_path) -> None:
    policy = load_policy(make_policy(tmp_path, rpm=100))
    limiter = RateLimiter(clients(timeout_s=0.3))
    now = [0.0]
    limiter.breaker = RedisBreaker(BREAKER_S, clock=lambda: now[0])
    attempts = 0
    admit = limiter.sliding_log.admit

    async def counted(*args, **kwargs):
        nonlocal attempts
        attempts += 1
        return await admit(*args, **kwargs)

    limiter.sliding_log.admit = counted  # type: ignore[method-assign]
    redis.kill()
    await limiter.admit(_job(endpoint="chat"), policy)  # fails open, and opens the breaker
    assert attempts == 1 and not limiter.breaker.is_closed

    now[0] += BREAKER_S  # half-open, Redis still down: 20 requests at once, one of them probes
    await asyncio.gather(*(limiter.admit(_job(endpoint="chat"), policy) for _ in range(20)))
    assert attempts == 2 and limiter.num_unchecked == 21
    with pytest.raises(APIError) as refused:  # the probe failed: fail-closed endpoints refuse at once
        await limiter.admit(_job(endpoint="strict"), policy)
    assert refused.value.status == 503 and attempts == 2

    redis.start()
    now[0] += BREAKER_S
    reservations = await asyncio.gather(*(limiter.admit(_job(endpoint="strict"), policy) for _ in range(5)),
                                        return_exceptions=True)
    # The probe got through and closed the breaker; the four that came with it did not wait for it
    # (this endpoint fails closed: they were refused).
    assert [isinstance(r, APIError) and r.status == 503 for r in reservations] == [False] + [True] * 4
    assert attempts == 3
    assert limiter.breaker.is_closed
    assert (await limiter.admit(_job(endpoint="strict"), policy)).headers["x-ratelimit-limit-requests"] == "100"


def test_durations_in_openai_format() -> None:
    assert format_duration(0) == "0ms"
    assert format_duration(250) == "250ms"
    assert format_duration(1500) == "1.5s"
    assert format_duration(60_000) == "1m0s"
    assert format_duration(61_250) == "1m1.25s"


def test_a_refusal_that_names_no_scope_still_gets_a_clear_message() -> None:
    # The Redis script always names the blocking scope; if a reply ever does not, the client
    # still hears a 429 reason and when to retry (never an internal error).
    verdict = Verdict(is_admitted=False, retry_after_ms=1500, is_too_large=False, blocking=None, usage=())
    assert _refusal_message(verdict, num_tokens=30) == "rate limit reached; retry after 1.5s"
