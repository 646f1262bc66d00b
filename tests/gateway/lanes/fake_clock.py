"""A clock that moves only when the test says so; sleepers wake in deadline order."""

from __future__ import annotations

import asyncio
import heapq
import itertools

START = 1_700_000_000.0  # unix seconds, so job deadlines look like real ones
SETTLE_ROUNDS = 50  # loop turns per step; chains of task wake-ups here are a few turns long


async def settle() -> None:
    """Let every task that can run, run (nothing here does real I/O)."""
    for _ in range(SETTLE_ROUNDS):
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self, start: float = START) -> None:
        self.t = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(0.0, seconds), next(self._seq), future))
        await future

    async def advance(self, seconds: float) -> None:
        assert seconds >= 0, f"time moves forward only, got {seconds}"
        await self.advance_to(self.t + seconds)

    async def advance_to(self, target: float) -> None:
        """Move time to `target`, waking each sleeper at its own moment and letting tasks react.

        Tests name absolute moments (t0 + 10 ms) rather than summing steps, whose float
        rounding would land a hair before a window that closes at exactly t0 + 10 ms.
        """
        assert target >= self.t, f"time moves forward only: {target} < {self.t}"
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            wake_at, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue  # its sleeper was cancelled
            self.t = max(self.t, wake_at)
            future.set_result(None)
            await settle()
        self.t = target
        await settle()
