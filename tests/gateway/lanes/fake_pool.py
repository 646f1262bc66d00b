"""A worker pool stand-in: settable health and free capacity, and a record of every pick."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.job import Job


@dataclass(eq=False)
class FakeWorker:
    address: str


@dataclass
class FakePool:
    is_healthy: bool = True  # False: pick() finds no worker, so jobs stay queued
    has_workers: bool = True  # False: not one healthy worker, so admission refuses (503)
    free: int = 1000
    workers: list[FakeWorker] = field(default_factory=lambda: [FakeWorker("w0"), FakeWorker("w1")])
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    picks: list[Job] = field(default_factory=list)  # the job each batch was placed by, in order

    def pick(self, job: Job, exclude: Iterable[FakeWorker] = ()) -> FakeWorker | None:
        if not self.is_healthy:
            return None
        self.picks.append(job)
        return self.workers[(len(self.picks) - 1) % len(self.workers)]  # round robin: batches differ

    def free_capacity(self) -> int:
        return self.free

    def has_healthy_worker(self) -> bool:
        return self.has_workers

    def healthy(self) -> list[FakeWorker]:
        return list(self.workers) if self.is_healthy else []

    def set_healthy(self, is_healthy: bool) -> None:
        self.is_healthy = is_healthy
        self.changed.set()

    def set_free(self, free: int) -> None:
        self.free = free
        self.changed.set()
