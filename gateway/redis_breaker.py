"""A circuit breaker in front of Redis on the request path: closed, open, half-open.

Closed: every request uses Redis. A failure opens it: for `open_s` no request tries Redis,
each decides at once without it (the endpoint's fail-open/closed policy). Then it is
half-open: the first request to come is the probe and tries Redis; every other request
still decides without Redis, at once, until the probe's answer is in. A probe that
succeeds closes the breaker; one that fails opens it again. So after an outage one
request, not every request, pays a connect timeout per period, and recovery needs
nothing but the next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class Permit(Enum):
    USE = "use"  # closed: use Redis
    PROBE = "probe"  # half-open: this caller probes; it must report succeeded(), failed() or abandoned()
    REFUSED = "refused"  # open, or a probe is out: decide without Redis


class RedisBreaker:
    def __init__(self, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_s = open_s
        self._clock = clock
        self._open_until: float | None = None  # None: closed
        self._is_probing = False

    @property
    def is_closed(self) -> bool:
        return self._open_until is None

    def permit(self) -> Permit:
        if self._open_until is None:
            return Permit.USE
        if self._is_probing or self._clock() < self._open_until:
            return Permit.REFUSED
        self._is_probing = True
        return Permit.PROBE

    def succeeded(self) -> None:
        self._open_until, self._is_probing = None, False

    def failed(self) -> None:
        self._open_until, self._is_probing = self._clock() + self.open_s, False

    def abandoned(self) -> None:
        """The probe ended without an answer (its request was cancelled): the next caller probes."""
        self._is_probing = False
