"""The gateway's view of its workers: health, load reports, and which worker gets a job.

Placement: the least loaded healthy worker by its last load report (running + waiting
sequences against its slots, queued prefill tokens, KV in use) plus the calls this gateway
has opened since; a prompt prefix prefers its rendezvous-hash worker (where that prefix is
likely cached) unless that worker is clearly busier than the best.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable

from gateway.job import Job, PromptList, WorkerLoad
from gateway.worker_client import WorkerClient

log = logging.getLogger(__name__)

AFFINITY_PREFIX_CHARS = 256  # prompt prefix that decides affinity (about a system prompt)
AFFINITY_SLACK = 0.25  # how much busier the affine worker may be than the best and still win
PREFILL_TOKENS_SCALE = 4096  # queued prefill tokens that weigh like a full set of slots


class WorkerPool:
    def __init__(self, addresses: Iterable[str], refresh_interval_s: float = 0.5, use_sessions: bool = True) -> None:
        self.use_sessions = use_sessions  # gateway/worker_client.py: one Session call per worker, or a call per stream
        self.workers = [WorkerClient(a, use_sessions) for a in addresses]
        self.refresh_interval_s = refresh_interval_s
        self._task: asyncio.Task | None = None
        self._closing: set[asyncio.Task] = set()  # removed workers waiting for their calls to end
        self.changed = asyncio.Event()  # set whenever health or load changes (wakes lane queues)

    async def start(self) -> None:
        await self.refresh_all()
        self._task = asyncio.create_task(self._refresh_forever(), name="worker-pool-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)

    async def add(self, address: str) -> WorkerClient:
        """A worker joins at run time (worker registry); in rotation once its health check passes."""
        existing = next((w for w in self.workers if w.address == address), None)
        if existing is not None:
            return existing
        worker = WorkerClient(address, self.use_sessions)
        await worker.refresh()
        self.workers = [*self.workers, worker]  # a new list: loops over the old one stay valid
        self.changed.set()
        return worker

    async def remove(self, address: str, grace_s: float = 30.0) -> None:
        """A worker leaves: out of rotation now; its channel closes once its calls finish."""
        gone = [w for w in self.workers if w.address == address]
        self.workers = [w for w in self.workers if w.address != address]
        for w in gone:
            w.is_healthy = False
            task = asyncio.create_task(_close_when_idle(w, grace_s), name=f"close-{address}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self.changed.set()

    async def refresh_all(self) -> None:
        workers = self.workers  # add/remove swap the list; judge this snapshot
        before = [w.is_healthy for w in workers]
        await asyncio.gather(*(w.refresh() for w in workers))
        for w, was in zip(workers, before):
            if was != w.is_healthy:
                (log.info if w.is_healthy else log.warning)("worker %s is now %s", w.address,
                                                            "healthy" if w.is_healthy else "out of rotation")
        self.changed.set()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            await self.refresh_all()

    def healthy(self) -> list[WorkerClient]:
        return [w for w in self.workers if w.is_healthy]

    def has_healthy_worker(self) -> bool:
        """Cheap enough for every admission: no list, stops at the first healthy worker."""
        return any(w.is_healthy for w in self.workers)

    def mark_down(self, worker: WorkerClient) -> None:
        if worker.is_healthy:
            log.warning("worker %s taken out of rotation", worker.address)
        worker.is_healthy = False
        self.changed.set()

    def pick(self, job: Job, exclude: Iterable[WorkerClient] = ()) -> WorkerClient | None:
        excluded = set(map(id, exclude))
        candidates = [w for w in self.healthy() if id(w) not in excluded]
        if not candidates:
            return None
        best = min(candidates, key=self.score)
        affine = self._affine(job, candidates)
        if affine is not None and self.score(affine) <= self.score(best) + AFFINITY_SLACK:
            return affine
        return best

    @staticmethod
    def score(w: WorkerClient) -> float:
        load = w.load
        seqs = max(load.num_running + load.num_waiting, w.num_inflight)
        return (seqs / load.max_num_seqs
                + load.num_queued_prefill_tokens / PREFILL_TOKENS_SCALE
                + (1.0 - load.kv_free_fraction if load.num_total_kv_blocks else 0.0))

    def backfill_capacity(self) -> int:
        """More preemptible (bulk) sequences the healthy workers can take now: each worker's
        step-time headroom (num_bulk_slots), minus calls opened since its report. A worker
        whose steps have no time budget (token mode, an older worker, no latency work to
        protect) offers its free sequence slots instead."""
        total = 0
        for w in self.healthy():
            load = w.load
            reported = load.num_running + load.num_waiting
            opened_since = max(0, w.num_inflight - reported)  # calls the report cannot know of yet
            room = load.num_bulk_slots if load.has_step_budget else load.max_num_seqs - reported
            total += max(0, room - opened_since)
        return total

    def loads(self) -> list[WorkerLoad]:
        """The healthy workers' last load reports (admission reads their by-lane waits)."""
        return [w.load for w in self.healthy()]

    @staticmethod
    def _affine(job: Job, candidates: list[WorkerClient]) -> WorkerClient | None:
        key = _prefix_key(job)
        if key is None:
            return None
        # Rendezvous hashing: stable choice that moves only 1/N of prefixes when a worker leaves.
        return max(candidates, key=lambda w: hashlib.blake2b(key + w.address.encode(), digest_size=8).digest())


def _prefix_key(job: Job) -> bytes | None:
    p = job.prompt
    if isinstance(p, PromptList):  # a list of prompts goes where its first one's prefix is cached
        first = p.items[0]
        p = first if isinstance(first, str) else list(first)
    if isinstance(p, str):
        text = p
    elif p and isinstance(p[0], dict):
        text = "".join(f"{m['role']}:{m['content']}" for m in p)
    else:
        text = ",".join(map(str, p[:AFFINITY_PREFIX_CHARS]))
    return text[:AFFINITY_PREFIX_CHARS].encode() if len(text) >= 32 else None


async def _close_when_idle(worker: WorkerClient, grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    while worker.num_inflight and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await worker.close()
