"""The batch runner: each gateway with Redis runs one, and together they work every batch.

One pass (every POLL_S, or at once when something changes locally) looks at each active
batch, in a shuffled order, and moves it one step: validate it, finish it (completed,
cancelled, expired; cancelled with every unrun line failed when its tenant left the
policy), or mark it as wanting lines; then the free slots are shared among the batches
that want lines by weighted round robin over tenants and batches (fair_claim.py).

Lines run as ordinary jobs through `job_from_body` + `complete` (gateway/completion.py),
on a bulk lane, at most `concurrency` at a time per gateway, so the bulk lane's queue
always has work without being flooded. Claims, answers and crash recovery are
item_queue.py's; the ending is finish.py's.

Retries: a line refused for capacity (429: lane queue full or its deadline passed; 503: no
worker) never ran, so it waits and tries again until the batch expires or is cancelled;
a line whose workers were lost mid-way (502 worker_lost: the gateway could not resume it)
is retried MAX_WORKER_LOST times. Any other error is the line's answer, in the error file:
among them a 502 worker_error, a failure the line itself likely caused (a worker that
stays healthy failed it, or two workers' engines died under it), which would only repeat.

Tenant rpm/tpm limits do not apply to batch lines (as at OpenAI, whose Batch API has its
own quota): a batch is paced by this runner's concurrency and the bulk lane, which only
fills capacity the interactive lanes leave idle, so it cannot crowd out the tenant's
own interactive traffic the way spending its per-minute budget would.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter, defaultdict

from redis.exceptions import RedisError

from gateway.batches.batch_store import BatchStore
from gateway.batches.fair_claim import Claimable, share_slots
from gateway.batches.finish import finish
from gateway.batches.item_queue import Answer, Claimed, Item
from gateway.batches.output import GAVE_UP, TENANT_REMOVED, response_answer, unrun_answer
from gateway.batches.records import BatchRecord, BatchStatus
from gateway.batches.target import on_bulk_lane
from gateway.batches.validate import LineError, capped, validate_file
from gateway.completion import complete
from gateway.errors import APIError
from gateway.intake import job_from_body
from gateway.job import Job
from gateway.model_catalog import ModelCatalog
from gateway.policy_store import PolicyStore
from gateway.service import GenerationService
from lanes.policy_model import Policy

log = logging.getLogger(__name__)

POLL_S = 0.25
MAX_WORKER_LOST = 3
MAX_DELIVERIES = 5  # a line handed out more often than this (its runners died or failed) gets an error
NEVER_RAN = {429, 503}
WORKER_LOST = 502
WORKER_LOST_CODE = "worker_lost"  # a 502 with another code (worker_error) is the line's own failure
LOG_EVERY_S = 10.0


class BatchRunner:
    def __init__(self, store: BatchStore, policy_store: PolicyStore, catalog: ModelCatalog,
                 service: GenerationService, *, concurrency: int = 8, claim_idle_s: float = 30.0) -> None:
        self.store = store
        self.policy_store = policy_store  # each line is checked against the policy current when it runs
        self.catalog = catalog
        self.service = service
        self.concurrency = concurrency
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.num_items_run = 0  # lines this gateway answered (tests check replicas share work)
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}  # (batch id, entry id) -> task
        self._cursors: dict[str, str] = {}  # XAUTOCLAIM position per batch
        self._tasks: list[asyncio.Task[None]] = []
        self._last_warning = -LOG_EVERY_S
        self._is_closed = False

    def start(self) -> None:
        self._is_closed = False
        self._tasks = [asyncio.create_task(self._loop(), name="batch-runner"),
                       asyncio.create_task(self._keep_claims(), name="batch-claims")]

    async def close(self) -> None:
        """Stop; lines in flight are abandoned and another gateway (or this one, restarted)
        takes them over once their claims go stale."""
        # The loops also check the flag: a cancel that lands inside a Redis call was seen to get
        # lost (redis-py 8, Python 3.11), and a loop that ignores it would hang the shutdown.
        self._is_closed = True
        for task in [*self._tasks, *self._inflight.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._inflight.values(), return_exceptions=True)

    async def _loop(self) -> None:
        while not self._is_closed:
            self.store.changed.clear()
            try:
                await self.run_once()
            except (RedisError, OSError) as exc:
                self._warn(f"batch runner: Redis unavailable ({exc}); retrying")
            except Exception:
                log.exception("batch runner pass failed; retrying")
            try:  # not asyncio.wait_for: on 3.11 it can swallow a cancel that races the event
                async with asyncio.timeout(POLL_S):
                    await self.store.changed.wait()
            except TimeoutError:
                pass

    async def run_once(self) -> None:
        running: list[BatchRecord] = []
        batch_ids = list(await self.store.active_ids())
        random.shuffle(batch_ids)  # no batch id is always looked at (and claimed for) first
        for batch_id in batch_ids:
            batch = await self.store.get(batch_id)
            if batch is None or batch.status.is_final:
                await self.store.forget_active(batch_id)
                continue
            if await self._advance(batch):
                running.append(batch)
        await self._claim_fairly(running)
        running_ids = {batch.id for batch in running}
        for (batch_id, _), task in list(self._inflight.items()):
            if batch_id not in running_ids:
                task.cancel()  # cancelled, expired or finished elsewhere: stop spending the worker
        self._cursors = {b: c for b, c in self._cursors.items() if b in running_ids}

    async def _advance(self, batch: BatchRecord) -> bool:
        """One step for one batch; True while its lines should keep running here."""
        removed = not self.policy_store.policy.has_tenant(batch.tenant)
        if removed and batch.status in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS):
            log.warning("%s: tenant %r is no longer in the policy; stopping the batch", batch.id, batch.tenant)
            self._drop(batch.id)
            await self.store.transition(batch.id, BatchStatus.CANCELLING, allowed=(batch.status,))
            latest = await self.store.get(batch.id)
            if latest is not None and latest.status is BatchStatus.CANCELLING:
                await finish(self.store, latest, BatchStatus.CANCELLED, TENANT_REMOVED)
        elif batch.status is BatchStatus.CANCELLING:
            self._drop(batch.id)
            await finish(self.store, batch, BatchStatus.CANCELLED, TENANT_REMOVED if removed else None)
        elif batch.status in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS) and time.time() >= batch.expires_at:
            self._drop(batch.id)
            if batch.status is BatchStatus.VALIDATING:
                # Expired before any pass validated it (a busy or stopped gateway): its lines
                # must exist to get their batch_expired answers, so it is validated now.
                await self._validate(batch)
                latest = await self.store.get(batch.id)
                if latest is None or latest.status is not BatchStatus.IN_PROGRESS:
                    return False  # failed validation (final), or another gateway validates it
                batch = latest
            await finish(self.store, batch, BatchStatus.EXPIRED)
        elif batch.status is BatchStatus.VALIDATING:
            await self._validate(batch)
        elif batch.status is BatchStatus.FINALIZING:
            await finish(self.store, batch, BatchStatus.COMPLETED)
        elif batch.completed + batch.failed >= batch.total:
            if await self.store.transition(batch.id, BatchStatus.FINALIZING, allowed=(BatchStatus.IN_PROGRESS,)):
                latest = await self.store.get(batch.id)
                if latest is not None and latest.status is BatchStatus.FINALIZING:
                    await finish(self.store, latest, BatchStatus.COMPLETED)
        else:
            return True
        return False

    async def _validate(self, batch: BatchRecord) -> None:
        if not await self.store.try_validate(batch.id, self.consumer, ttl_ms=max(self.claim_idle_ms, 5000)):
            return  # another gateway is at it
        content = await self.store.files.content(batch.input_file_id, batch.tenant)
        if content is None:
            errors = [LineError("input_file_missing", f"input file {batch.input_file_id!r} was deleted")]
            items: list[Item] = []
        else:
            # Off the event loop: a large file must not stall the streams this gateway serves.
            items, errors = await asyncio.to_thread(validate_file, content, batch.endpoint,
                                                    lambda body: self._job(batch, body))
        if errors:
            await self.store.fail(batch.id, capped(errors))
        else:
            await self.store.start(batch.id, items)

    async def _claim_fairly(self, batches: list[BatchRecord]) -> None:
        """Share the free slots (fair_claim.py). A batch that gets fewer lines than granted (the
        rest run on other gateways) wants no more this pass, and its slots go round again."""
        policy = self.policy_store.policy
        unanswered = {b.id: max(0, b.total - b.completed - b.failed) for b in batches}
        for _ in range(3):
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                return
            running = Counter(batch_id for batch_id, _ in self._inflight)
            claimable = [Claimable(b.id, b.tenant, _weight(policy, b.tenant), unanswered[b.id], running[b.id])
                         for b in batches]
            grants = share_slots(claimable, free)
            if not grants:
                return
            for batch in batches:
                granted = grants.get(batch.id, 0)
                if granted and await self._claim(batch, granted) < granted:
                    unanswered[batch.id] = 0  # nothing more to claim here now

    async def _claim(self, batch: BatchRecord, free: int) -> int:
        """Claim up to `free` lines of the batch (stale claims first); how many were claimed."""
        items = self.store.items
        stale, self._cursors[batch.id] = await items.claim_stale(batch.id, self.consumer, self.claim_idle_ms, free,
                                                                 self._cursors.get(batch.id, "0-0"))
        fresh = await items.claim_new(batch.id, self.consumer, free - len(stale)) if free > len(stale) else []
        for claimed in [*stale, *fresh]:
            key = (batch.id, claimed.entry_id)
            if key not in self._inflight:  # a stale claim may be our own (refresh missed during an outage)
                task = asyncio.create_task(self._run(batch, claimed), name=f"batch-item-{key}")
                self._inflight[key] = task
                # A done callback, not a finally: a task cancelled before it first ran runs no finally.
                task.add_done_callback(functools.partial(self._done, key))
        return len(stale) + len(fresh)

    def _done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        self.store.changed.set()  # a slot is free: claim the next line now

    async def _run(self, batch: BatchRecord, claimed: Claimed) -> None:
        item = claimed.item
        try:
            if await self.store.items.is_answered(batch.id, item.custom_id):
                answer = response_answer(item.custom_id, 200, "", {})  # only acks; the stored answer stays
            elif claimed.deliveries > MAX_DELIVERIES:
                # A poison line (it kills or breaks whoever runs it) must not loop until the batch expires.
                log.error("%s: line %d (%s) was started %d times without finishing; answering it with an error",
                          batch.id, item.line, item.custom_id, claimed.deliveries - 1)
                code, message = GAVE_UP
                answer = unrun_answer(item.custom_id, (code, message.format(n=claimed.deliveries - 1)))
            else:
                answer = await self._execute(batch, item.body, item.custom_id)
                self.num_items_run += 1
            await self._save(batch.id, item.custom_id, answer, claimed.entry_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: line %d (%s) failed in the runner; it will be retried", batch.id, item.line,
                          item.custom_id)

    async def _execute(self, batch: BatchRecord, body: dict, custom_id: str) -> Answer:
        num_lost = 0
        attempt = 0
        while True:
            attempt += 1
            job: Job | None = None
            try:
                job = self._job(batch, body)
                return response_answer(custom_id, 200, job.request_id,
                                       await complete(self.service, self.catalog, job))
            except APIError as exc:
                is_lost = exc.status == WORKER_LOST and exc.code == WORKER_LOST_CODE
                retry = exc.status in NEVER_RAN or (is_lost and num_lost < MAX_WORKER_LOST)
                if not retry:
                    return response_answer(custom_id, exc.status, job.request_id if job else "", exc.body())
                num_lost += is_lost
                await asyncio.sleep(min(5.0, 0.1 * 2 ** attempt))

    def _job(self, batch: BatchRecord, body: dict) -> Job:
        policy = self.policy_store.policy
        if batch.laneway_endpoint not in policy.endpoints:
            raise APIError(404, f"endpoint {batch.laneway_endpoint!r} is no longer in the policy",
                           type="not_found_error", code="unknown_endpoint")
        job = job_from_body(policy, self.catalog, batch.kind, batch.laneway_endpoint, batch.tenant, body, {})
        return on_bulk_lane(job, policy, batch.expires_at)

    async def _save(self, batch_id: str, custom_id: str, answer: Answer, entry_id: str) -> None:
        """Record the answer; through a Redis outage, keep trying (the work is done, keep it)."""
        while True:
            try:
                await self.store.items.record(batch_id, custom_id, answer, entry_id)
                return
            except (RedisError, OSError) as exc:
                self._warn(f"batch runner: cannot record {batch_id}/{custom_id} ({exc}); retrying")
                await asyncio.sleep(0.5)

    async def _keep_claims(self) -> None:
        """Refresh our claims so no other gateway takes over lines we are still running."""
        while not self._is_closed:
            await asyncio.sleep(self.claim_idle_ms / 3000)
            by_batch: dict[str, list[str]] = defaultdict(list)
            for batch_id, entry_id in list(self._inflight):
                by_batch[batch_id].append(entry_id)
            for batch_id, entry_ids in by_batch.items():
                try:
                    lost = await self.store.items.refresh(batch_id, self.consumer, entry_ids)
                except (RedisError, OSError) as exc:
                    self._warn(f"batch runner: cannot refresh claims ({exc})")
                    continue
                except Exception:
                    log.exception("batch runner: refreshing claims failed")
                    continue
                for entry_id in lost:  # taken over after we stalled: let the new owner answer it
                    task = self._inflight.get((batch_id, entry_id))
                    if task is not None:
                        task.cancel()

    def _drop(self, batch_id: str) -> None:
        for (b, _), task in list(self._inflight.items()):
            if b == batch_id:
                task.cancel()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= LOG_EVERY_S:
            self._last_warning = now
            log.warning(message)


def _weight(policy: Policy, tenant: str) -> float:
    spec = policy.tenants.get(tenant)
    return spec.weight if spec is not None else 1.0
