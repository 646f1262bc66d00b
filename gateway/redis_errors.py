"""Which Redis failures are an outage and which are Redis saying it is full.

An out-of-memory reply (Redis at maxmemory with a noeviction policy) comes back from a
Redis that is up and answering: retrying in a moment will not help, and treating it as
an outage would let rate limits fail open exactly when storage is exhausted. So it is
its own error, reported as what it is (507 for storage the client asked for, 503 for
a limit that cannot be recorded), and it never opens the limiter.
"""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError, ResponseError

from gateway.errors import APIError


def is_out_of_memory(exc: BaseException) -> bool:
    # redis-py maps a reply starting "OOM" to OutOfMemoryError; from inside a script it arrives
    # as a plain ResponseError that quotes the same message.
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and "used memory > 'maxmemory'" in str(exc))


def storage_full(exc: BaseException) -> APIError:
    """Storing what the client sent failed because Redis is full (HTTP 507 Insufficient Storage)."""
    return APIError(507, "the gateway's Redis is out of memory (maxmemory reached), so nothing more can be stored; "
                         "delete files you no longer need, or ask the operator to raise maxmemory",
                    type="server_error", code="redis_out_of_memory")


def limits_unrecordable(exc: BaseException) -> APIError:
    """A rate limit cannot be recorded because Redis is full: refuse rather than serve unchecked."""
    return APIError(503, "rate limits cannot be recorded (the gateway's Redis is out of memory); the request is "
                         "refused rather than served unchecked; retry later",
                    type="service_unavailable", code="redis-out-of-memory",
                    headers={"Retry-After": "5", "x-laneway-reject-reason": "redis-out-of-memory"})
