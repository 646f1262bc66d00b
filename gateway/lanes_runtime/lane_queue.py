"""One lane's waiting jobs, oldest first, with O(1) removal for cancelled clients.

Also kept per tenant (oldest first within each), so the lane can take the next job of
whichever tenant fair queuing picks (fair_share.py) without scanning the queue.

Invariant: every waiter in the queue has a pending future. A waiter whose future is done
(its task was cancelled, or it was refused) is gone from the queue or about to be purged:
`head()`, `pop_batch()` and `pop_expired()` never return one. Deadlines sit in a heap so
expiring jobs costs nothing per queued job: a long bulk queue is never scanned.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.job import Job

if TYPE_CHECKING:
    from gateway.worker_client import WorkerClient

_seq = itertools.count()


@dataclass(eq=False)
class Waiter:
    job: Job
    future: asyncio.Future[WorkerClient]
    enqueued_at: float
    window_s: float  # the lane's batch window when this job arrived; a batch it heads keeps it
    seq: int = field(init=False, default_factory=lambda: next(_seq))

    @property
    def is_waiting(self) -> bool:
        return not self.future.done()


class LaneQueue:
    def __init__(self) -> None:
        self._waiters: OrderedDict[int, Waiter] = OrderedDict()
        self._deadlines: list[tuple[float, int]] = []  # (deadline, seq); stale entries skipped lazily
        self._by_tenant: dict[str, OrderedDict[int, Waiter]] = {}  # same waiters, per tenant

    def __len__(self) -> int:
        return len(self._waiters)

    def push(self, waiter: Waiter) -> None:
        if not waiter.is_waiting:
            raise RuntimeError(f"{waiter.job.request_id}: only a pending job can be queued")
        self._waiters[waiter.seq] = waiter
        self._by_tenant.setdefault(waiter.job.tenant, OrderedDict())[waiter.seq] = waiter
        if waiter.job.deadline is not None:
            heapq.heappush(self._deadlines, (waiter.job.deadline, waiter.seq))

    def remove(self, waiter: Waiter) -> bool:
        """Take a waiter out (its client left, or it leaves). False if it had already left the queue."""
        self._forget_tenant_entry(waiter)
        return self._waiters.pop(waiter.seq, None) is not None

    def tenant_heads(self) -> list[Waiter]:
        """The oldest waiting job of each tenant with one (the candidates to leave next)."""
        heads = []
        for tenant in list(self._by_tenant):
            waiters = self._by_tenant[tenant]
            while waiters:
                seq, waiter = next(iter(waiters.items()))
                if waiter.is_waiting and seq in self._waiters:
                    heads.append(waiter)
                    break
                del waiters[seq]
            if not waiters:
                del self._by_tenant[tenant]
        return heads

    def num_queued_of(self, tenant: str) -> int:
        """The tenant's jobs in this queue (a cancelled one may count until it is purged)."""
        return len(self._by_tenant.get(tenant, ()))

    def _forget_tenant_entry(self, waiter: Waiter) -> None:
        waiters = self._by_tenant.get(waiter.job.tenant)
        if waiters is not None:
            waiters.pop(waiter.seq, None)
            if not waiters:
                del self._by_tenant[waiter.job.tenant]

    def head(self) -> Waiter | None:
        self._purge_head()
        return next(iter(self._waiters.values()), None)

    def first(self, n: int) -> Iterator[Waiter]:
        """The first `n` waiting jobs, oldest first (the batch that is forming)."""
        self._purge_head()
        return itertools.islice((w for w in self._waiters.values() if w.is_waiting), n)

    def pop_batch(self, n: int) -> list[Waiter]:
        batch: list[Waiter] = []
        while self._waiters and len(batch) < n:
            _, waiter = self._waiters.popitem(last=False)
            self._forget_tenant_entry(waiter)
            if waiter.is_waiting:
                batch.append(waiter)
        return batch

    def earliest_deadline(self) -> float | None:
        self._purge_deadlines()
        return self._deadlines[0][0] if self._deadlines else None

    def pop_expired(self, now: float) -> list[Waiter]:
        """Waiters whose deadline is at or before `now`, taken out of the queue."""
        expired: list[Waiter] = []
        while (deadline := self.earliest_deadline()) is not None and deadline <= now:
            _, seq = heapq.heappop(self._deadlines)
            waiter = self._waiters.pop(seq)
            self._forget_tenant_entry(waiter)
            if waiter.is_waiting:
                expired.append(waiter)
        return expired

    def drain(self) -> list[Waiter]:
        """Everything still waiting (shutdown)."""
        waiters = [w for w in self._waiters.values() if w.is_waiting]
        self._waiters.clear()
        self._deadlines.clear()
        self._by_tenant.clear()
        return waiters

    def _purge_head(self) -> None:
        while self._waiters:
            seq, waiter = next(iter(self._waiters.items()))
            if waiter.is_waiting:
                return
            del self._waiters[seq]
            self._forget_tenant_entry(waiter)

    def _purge_deadlines(self) -> None:
        while self._deadlines:
            seq = self._deadlines[0][1]
            waiter = self._waiters.get(seq)
            if waiter is not None and waiter.is_waiting:
                return
            heapq.heappop(self._deadlines)
            gone = self._waiters.pop(seq, None)
            if gone is not None:
                self._forget_tenant_entry(gone)
