"""Rate limits and token budgets: admit a job against its tenant's rpm/tpm, in Redis.

Never checked against local memory: every admission is one atomic script in the shared
Redis (gateway/ratelimit/sliding_log.py), so N replicas with a limit L admit at most L
between them. Without a Redis URL the gateway has no rate limits at all (no_limits.py).

When Redis cannot be reached, the endpoint's `on_redis_unavailable` decides: `open`
serves the request unchecked (logged, counted in `num_unchecked`), `closed` refuses it
with 503 + Retry-After. A circuit breaker (gateway/redis_breaker.py) keeps a dead Redis
off the request path: after a failure no request tries Redis for `BREAKER_S`; then one
request probes while the others decide at once, and its success brings every request
back to Redis. Recovery needs nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.errors import APIError, refused
from gateway.job import Job
from gateway.ratelimit.headers import ratelimit_headers
from gateway.ratelimit.reservation import Reservation
from gateway.ratelimit.scope import Scope, scopes_for
from gateway.ratelimit.sliding_log import WINDOW_MS, SlidingLog, Verdict
from gateway.redis_breaker import Permit, RedisBreaker
from gateway.redis_errors import is_out_of_memory, limits_unrecordable
from lanes.endpoint import RedisFailMode
from lanes.policy import Policy

log = logging.getLogger(__name__)

BREAKER_S = 0.5  # after a Redis failure, decide by fail mode without trying for this long, then probe
LOG_EVERY_S = 10.0  # at most one "Redis unavailable" warning this often
UNAVAILABLE_RETRY_S = 1.0
REJECT_REASON = "rate-limit"


class RateLimiter:
    def __init__(self, redis: Redis, *, window_ms: int = WINDOW_MS) -> None:
        self.sliding_log = SlidingLog(redis, window_ms)
        self.num_unchecked = 0  # admitted without a check (Redis down, endpoint fails open)
        self.num_refused_unavailable = 0  # refused with 503 (Redis down, endpoint fails closed)
        self.breaker = RedisBreaker(BREAKER_S)
        self._last_warning = -LOG_EVERY_S
        self._settling: set[asyncio.Task[None]] = set()

    async def admit(self, job: Job, policy: Policy) -> Reservation:
        """Reserve the job's tokens, or raise APIError: 429 over a limit, 503 when Redis is down
        and the endpoint fails closed."""
        scopes = scopes_for(policy, job.tenant, job.endpoint)
        if not scopes:
            return Reservation.unlimited()
        num_tokens = job.prompt_tokens_estimate + job.sampling.max_tokens
        permit = self.breaker.permit()
        if permit is Permit.REFUSED:
            return self._without_redis(job, policy, "it failed moments ago")
        try:
            verdict = await self.sliding_log.admit(scopes, job.request_id, num_tokens)
        except (RedisError, OSError) as exc:
            if is_out_of_memory(exc):  # Redis is up and full: never a reason to serve unchecked
                self.breaker.succeeded()  # it answered: the connection is fine
                self.num_refused_unavailable += 1
                raise limits_unrecordable(exc) from exc
            self.breaker.failed()
            return self._without_redis(job, policy, str(exc))
        except BaseException:  # cancelled (client gone): no answer about Redis either way
            if permit is Permit.PROBE:
                self.breaker.abandoned()
            raise
        self.breaker.succeeded()
        headers = ratelimit_headers(verdict.usage)
        if not verdict.is_admitted:
            err = refused(REJECT_REASON, _refusal_message(verdict, num_tokens), verdict.retry_after_ms / 1000)
            err.headers.update(headers)
            raise err
        return Reservation(num_tokens, headers, lambda used: self._settle_soon(scopes, job.request_id, used))

    async def admit_call(self, tenant: str, policy: Policy, request_id: str) -> dict[str, str]:
        """Count one call of a route that runs no model (files, batches) against the tenant's rpm;
        its x-ratelimit-* headers, or raise APIError 429 over the limit. Such routes need Redis
        anyway, so a Redis failure is raised for the route to report."""
        scopes = scopes_for(policy, tenant, "")
        if not scopes:
            return {}
        try:
            verdict = await self.sliding_log.admit(scopes, request_id, 0)
        except (RedisError, OSError) as exc:
            if is_out_of_memory(exc):
                raise limits_unrecordable(exc) from exc
            raise
        headers = ratelimit_headers(verdict.usage)
        if not verdict.is_admitted:
            err = refused(REJECT_REASON, _refusal_message(verdict, 0), verdict.retry_after_ms / 1000)
            err.headers.update(headers)
            raise err
        return headers

    async def idle(self) -> None:
        """Wait until every pending settle has reached Redis (tests, shutdown)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    def _settle_soon(self, scopes: tuple[Scope, ...], request_id: str, used_tokens: int) -> None:
        task = asyncio.get_running_loop().create_task(self._settle(scopes, request_id, used_tokens))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, scopes: tuple[Scope, ...], request_id: str, used_tokens: int) -> None:
        try:
            await self.sliding_log.settle(scopes, request_id, used_tokens)
        except (RedisError, OSError) as exc:  # the reservation then expires with its window
            self._warn(f"could not settle a reservation ({exc}); it expires within a minute")

    def _without_redis(self, job: Job, policy: Policy, why: str) -> Reservation:
        spec = policy.endpoints.get(job.endpoint)
        mode = spec.on_redis_unavailable if spec is not None else RedisFailMode.CLOSED
        if mode is RedisFailMode.OPEN:
            self.num_unchecked += 1
            self._warn(f"Redis unavailable ({why}); serving endpoint {job.endpoint!r} without rate limits "
                       f"(on_redis_unavailable: open; {self.num_unchecked} unchecked so far)")
            return Reservation.unlimited()
        self.num_refused_unavailable += 1
        self._warn(f"Redis unavailable ({why}); refusing endpoint {job.endpoint!r} "
                   "(on_redis_unavailable: closed)")
        retry = str(int(UNAVAILABLE_RETRY_S))
        raise APIError(503, f"rate limits cannot be checked right now (Redis unavailable) and endpoint "
                            f"{job.endpoint!r} refuses unchecked requests; retry shortly",
                       type="service_unavailable", code="redis-unavailable",
                       headers={"Retry-After": retry, "x-laneway-reject-reason": "redis-unavailable"})

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= LOG_EVERY_S:
            self._last_warning = now
            log.warning(message)


def _refusal_message(verdict: Verdict, num_tokens: int) -> str:
    scope = verdict.blocking
    if scope is None:  # the Redis script refused without naming a scope: say what can be said
        return f"rate limit reached; retry after {verdict.retry_after_ms / 1000:.1f}s"
    if verdict.is_too_large:
        return (f"this request needs about {num_tokens} tokens (prompt estimate + max_tokens), more than the "
                f"{scope.tpm} tokens per minute {scope.name} may use; lower max_tokens or shorten the prompt")
    usage = next(u for u in verdict.usage if u.scope == scope)
    if scope.rpm is not None and usage.num_requests >= scope.rpm:
        what = f"{scope.rpm} requests per minute"
    else:
        what = f"{scope.tpm} tokens per minute ({usage.num_tokens} in use, this request needs {num_tokens})"
    return f"rate limit reached for {scope.name}: {what}; retry after {verdict.retry_after_ms / 1000:.1f}s"
