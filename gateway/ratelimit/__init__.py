"""Per-tenant rate limits and token budgets, enforced atomically in the shared Redis."""

from gateway.ratelimit.limiter import RateLimiter
from gateway.ratelimit.no_limits import Limiter, NoLimits
from gateway.ratelimit.reservation import Reservation

__all__ = ["Limiter", "NoLimits", "RateLimiter", "Reservation"]
