"""Where the lane runtime reads time and waits: injectable, so tests run on a fake clock.

Everything in the runtime that depends on time (windows, deadlines, service rates) goes
through one `Clock`; nothing calls time.time() or asyncio.sleep() directly. Job
timestamps are unix seconds, so `now()` is wall-clock time, not a monotonic counter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def wait_for_event(event: asyncio.Event, clock: Clock, timeout_s: float | None) -> None:
    """Return once `event` is set or `timeout_s` has passed on `clock` (None: no timeout).

    Does not clear the event; the caller owns that decision.
    """
    if event.is_set():
        return
    if timeout_s is None:
        await event.wait()
        return
    setter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(max(0.0, timeout_s)))
    try:
        await asyncio.wait({setter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        setter.cancel()
        sleeper.cancel()
        # Reap both so no task outlives this call (a pending task at loop close is an error).
        await asyncio.gather(setter, sleeper, return_exceptions=True)
