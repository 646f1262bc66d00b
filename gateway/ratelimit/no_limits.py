"""What handlers admit jobs through (`Limiter`), and the limiter of a gateway without Redis.

Without a Redis URL there is nothing to count against across replicas, so there are no
rate limits at all: every job is admitted, and no x-ratelimit-* headers are sent.
"""

from __future__ import annotations

from typing import Protocol

from gateway.job import Job
from gateway.ratelimit.reservation import Reservation
from lanes.policy import Policy


class Limiter(Protocol):
    @property
    def num_unchecked(self) -> int:
        """Jobs admitted without a check (Redis down, endpoint fails open)."""
        ...

    @property
    def num_refused_unavailable(self) -> int:
        """Jobs refused with 503 (Redis down, endpoint fails closed)."""
        ...

    async def admit(self, job: Job, policy: Policy) -> Reservation:
        """Reserve the job's tokens, or raise APIError (429 over a limit, 503 unavailable)."""
        ...

    async def admit_call(self, tenant: str, policy: Policy, request_id: str) -> dict[str, str]:
        """Count a call of a route that runs no model against the tenant's rpm; its headers."""
        ...

    async def idle(self) -> None:
        """Wait until every pending settle is done (tests, shutdown)."""
        ...


class NoLimits:
    num_unchecked = 0  # nothing is "unchecked": there is no limit to check against
    num_refused_unavailable = 0

    async def admit(self, job: Job, policy: Policy) -> Reservation:
        return Reservation.unlimited()

    async def admit_call(self, tenant: str, policy: Policy, request_id: str) -> dict[str, str]:
        return {}

    async def idle(self) -> None:
        pass
