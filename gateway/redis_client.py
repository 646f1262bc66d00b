"""The gateway's Redis connection: short timeouts, one quick retry, nothing that can hang.

A request path that checks a rate limit must not wait long for a Redis that is gone: the
endpoint's `on_redis_unavailable` decides quickly (serve or 503) instead, and a circuit
breaker (gateway/redis_breaker.py) lets one request at a time find out whether it is back.
One retry on a connection error lets a pooled connection that died with a restarted Redis
reconnect transparently; a second failure is reported. A timeout is not retried: a Redis
that does not answer within `timeout_s` costs a request that long, never twice that.
redis-py drops a connection that failed, so the pool never keeps dead sockets and
recovery needs no gateway restart.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

DEFAULT_TIMEOUT_S = 1.0


def connect(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Redis:
    """A client for `url` (redis://host:port/db); connects lazily on first use."""
    return Redis.from_url(url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                          retry=Retry(NoBackoff(), 1, (ConnectionError,)),
                          health_check_interval=10)
