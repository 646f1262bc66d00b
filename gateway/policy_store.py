"""The gateway's handle on its policy: `lanes.PolicySource` plus the async parts it lacks.

PolicySource validates and swaps atomically (an invalid file is refused, the last good
policy keeps serving); this adds the poll timer, SIGHUP, and listeners such as the lane
dispatcher that must learn about new lanes. Requests keep the decisions they were
admitted with (a Job copies what it needs at intake).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lanes.policy import Policy
from lanes.policy_source import PolicySource


class PolicyStore:
    def __init__(self, path: Path) -> None:
        self.source = PolicySource(path)
        self._listeners: list[Callable[[Policy], None]] = []
        self._task: asyncio.Task | None = None

    @property
    def policy(self) -> Policy:
        return self.source.current

    def on_change(self, listener: Callable[[Policy], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> bool:
        before = self.source.current
        ok = self.source.reload()
        self._notify(before)
        return ok

    def watch(self, interval_s: float = 1.0) -> None:
        self._task = asyncio.create_task(self._poll(interval_s), name="policy-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            before = self.source.current
            self.source.poll()
            self._notify(before)

    def _notify(self, before: Policy) -> None:
        if self.source.current is not before:
            for listener in self._listeners:
                listener(self.source.current)
