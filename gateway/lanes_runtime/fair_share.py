"""Fair shares between tenants inside one lane: virtual token counters (VTC).

The rule, stated once: each tenant has a counter of the service it has received in this
lane, in weighted tokens (`cost / weight`); the next job to leave the lane's queue is the
oldest job of the backlogged tenant with the smallest counter. Serving a job raises its
tenant's counter by what the job costs. A tenant that was idle (nothing queued, nothing
running here) and becomes active has its counter lifted to the smallest counter of the
tenants active now, so it cannot bank credit while away and then take the lane for as
long as others were served; with nobody else active it is lifted to the last counter
served, for the same reason.

Cost of a job: prompt tokens weighted as they cost (a prefill token is far cheaper for a
worker than a decode step, so it weighs PROMPT_TOKEN_COST of a generated token), plus
the tokens it may generate (max_tokens), charged when it leaves; when it ends, tokens it
was charged for and did not generate are given back. A tenant that sends long prompts
or long answers pays for them; a tenant of weight 2 gets twice the tokens of weight 1.

Pure Python: no asyncio, no clock. Counters are floats that only grow while a tenant is
active; relative order is all that matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from laneway_proto.fair_cost import PROMPT_TOKEN_COST

OUTPUT_TOKEN_COST = 1.0


@dataclass(frozen=True)
class JobCost:
    prompt_tokens: int
    max_output_tokens: int

    @property
    def charged(self) -> float:
        return PROMPT_TOKEN_COST * self.prompt_tokens + OUTPUT_TOKEN_COST * self.max_output_tokens

    def refund(self, num_output_tokens: int) -> float:
        """What a job that generated num_output_tokens was charged and did not use."""
        unused = max(0, self.max_output_tokens - max(0, num_output_tokens))
        return OUTPUT_TOKEN_COST * unused


class VirtualCounters:
    """One lane's counters. `active` tenants: with a job queued or running in the lane."""

    def __init__(self) -> None:
        self._counters: dict[str, float] = {}
        self._num_active: dict[str, int] = {}  # tenant -> jobs queued or running here
        self._last_served = 0.0

    def counter(self, tenant: str) -> float:
        return self._counters.get(tenant, 0.0)

    def is_active(self, tenant: str) -> bool:
        return self._num_active.get(tenant, 0) > 0

    def arrive(self, tenant: str) -> None:
        """A job of `tenant` joined the lane (queued)."""
        if not self.is_active(tenant):
            others = [self._counters.get(t, 0.0) for t in self._num_active]
            floor = min(others) if others else self._last_served
            self._counters[tenant] = max(self._counters.get(tenant, 0.0), floor)
        self._num_active[tenant] = self._num_active.get(tenant, 0) + 1

    def leave(self, tenant: str) -> None:
        """A job of `tenant` left the lane for good (finished, failed, cancelled, expired)."""
        n = self._num_active.get(tenant, 0) - 1
        if n > 0:
            self._num_active[tenant] = n
        else:
            self._num_active.pop(tenant, None)

    def charge(self, tenant: str, cost: float, weight: float) -> None:
        """The tenant was served `cost` tokens' worth (negative: given back)."""
        if weight <= 0:
            raise ValueError(f"a tenant's weight is positive, got {weight}")
        self._counters[tenant] = max(0.0, self._counters.get(tenant, 0.0) + cost / weight)
        if cost > 0:
            self._last_served = max(self._last_served, self._counters[tenant])

    def pick(self, candidates: list[str]) -> str | None:
        """The candidate (backlogged, not at a cap) with the smallest counter. A tie is what a
        returning tenant meets (lifted level with the least served): it goes to the tenant with
        fewer jobs queued or running here, then by name for a stable order, so which tenant
        waits one more job never depends on how the tenants are named."""
        if not candidates:
            return None
        return min(candidates, key=lambda t: (self._counters.get(t, 0.0), self._num_active.get(t, 0), t))
