"""A worker pool stand-in: settable health, backfill capacity and load reports, and a record of
every pick."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.job import Job, WorkerLoad
from gateway.worker_pool import WorkerPool


@dataclass(eq=False)
class FakeWorker:
    """What the dispatcher and WorkerPool read of a WorkerClient: address, health, last load
    report, calls open on it."""

    address: str
    load: WorkerLoad = field(default_factory=WorkerLoad)
    is_healthy: bool = True
    num_inflight: int = 0


def pool_of(*workers: FakeWorker) -> WorkerPool:
    """A real WorkerPool over fake workers (no gRPC): its placement and capacity rules."""
    pool = WorkerPool([])
    pool.workers = list(workers)  # type: ignore[list-item]
    return pool


def timed(num_bulk_slots: int, num_running: int = 4, max_num_seqs: int = 32) -> WorkerLoad:
    """A load report from a worker whose planner has a step-time budget (its streams' TBT)."""
    return WorkerLoad(num_running=num_running, max_num_seqs=max_num_seqs, step_time_budget_ms=200.0,
                      num_bulk_slots=num_bulk_slots)


@dataclass
class FakePool:
    is_healthy: bool = True  # False: pick() finds no worker, so jobs stay queued
    has_workers: bool = True  # False: not one healthy worker, so admission refuses (503)
    free: int = 1000  # what backfill_capacity() reports: room for bulk sequences
    workers: list[FakeWorker] = field(default_factory=lambda: [FakeWorker("w0"), FakeWorker("w1")])
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    picks: list[Job] = field(default_factory=list)  # the job each batch was placed by, in order
    reports: list[WorkerLoad] = field(default_factory=list)  # the healthy workers' load reports

    def pick(self, job: Job, exclude: Iterable[FakeWorker] = ()) -> FakeWorker | None:
        if not self.is_healthy:
            return None
        self.picks.append(job)
        return self.workers[(len(self.picks) - 1) % len(self.workers)]  # round robin: batches differ

    def backfill_capacity(self) -> int:
        return self.free

    def loads(self) -> list[WorkerLoad]:
        return list(self.reports) if self.is_healthy else []

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
