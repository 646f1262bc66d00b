"""Batches in Redis: create, read, list, and status changes that are compare-and-set.

Every status change names the statuses it may leave from and happens in Redis (a script,
or WATCH/MULTI), so two gateways racing (one finishing, one cancelling) cannot both win.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from gateway.batches import keys
from gateway.batches.files import FileStore
from gateway.batches.item_queue import Item, ItemQueue
from gateway.batches.paging import page_ids
from gateway.batches.records import BatchRecord, BatchStatus
from gateway.redis_types import fields, text_hash, text_set

# KEYS: batch hash. ARGV: new status, now, allowed old statuses... Returns the status after.
_TRANSITION = """
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return false end
for i = 3, #ARGV do
  if s == ARGV[i] then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[1] .. '_at', ARGV[2])
    return ARGV[1]
  end
end
return s
"""


class BatchStore:
    def __init__(self, redis: Redis, *, file_ttl_s: int = 30 * 24 * 3600) -> None:
        self.redis = redis
        self.file_ttl_s = file_ttl_s  # output files expire this long after their batch ends
        self.files = FileStore(redis)
        self.items = ItemQueue(redis)
        self.changed = asyncio.Event()  # set on local create/cancel: wakes this gateway's runner
        self._transition = redis.register_script(_TRANSITION)

    async def create(self, record: BatchRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.batch_key(record.id), mapping=fields(record.to_hash()))
            pipe.zadd(keys.batches_index(record.tenant), {record.id: record.created_at})
            pipe.sadd(keys.ACTIVE, record.id)
            await pipe.execute()
        self.changed.set()

    async def get(self, batch_id: str, tenant: str | None = None) -> BatchRecord | None:
        """The batch, or None if missing or (with tenant) owned by another tenant."""
        h = await self.redis.hgetall(keys.batch_key(batch_id))
        if not h or (tenant is not None and h.get("tenant") != tenant):
            return None
        return BatchRecord.from_hash(text_hash(h))

    async def list(self, tenant: str, *, limit: int, after: str | None) -> tuple[list[BatchRecord], bool]:
        ids = await page_ids(self.redis, keys.batches_index(tenant), after, newest_first=True)
        records: list[BatchRecord] = []
        for batch_id in ids[:limit + 1]:
            record = await self.get(batch_id, tenant)
            if record is not None:
                records.append(record)
        return records[:limit], len(records) > limit

    async def active_ids(self) -> builtins.list[str]:
        return sorted(text_set(await self.redis.smembers(keys.ACTIVE)))

    async def forget_active(self, batch_id: str) -> None:
        await self.redis.srem(keys.ACTIVE, batch_id)

    async def transition(self, batch_id: str, to: BatchStatus, *, allowed: tuple[BatchStatus, ...]) -> bool:
        """Set status `to` (and `<to>_at`) if the status is one of `allowed`; True if it was."""
        after = await self._transition(keys=[keys.batch_key(batch_id)],
                                       args=[to.value, int(time.time()), *(s.value for s in allowed)])
        self.changed.set()
        return after == to.value  # also when it already was `to` (cancel twice, finalize twice)

    async def try_validate(self, batch_id: str, owner: str, ttl_ms: int) -> bool:
        """Only one gateway validates a batch at a time; the lock expires if it dies."""
        return bool(await self.redis.set(keys.validator_key(batch_id), owner, nx=True, px=ttl_ms))

    async def start(self, batch_id: str, items: builtins.list[Item]) -> bool:
        """validating -> in_progress with every line queued, atomically. False if the status moved."""
        return await self.write_if_status(batch_id, (BatchStatus.VALIDATING,), lambda pipe: (
            ItemQueue.enqueue(pipe, batch_id, items),
            pipe.hset(keys.batch_key(batch_id), mapping={
                "status": BatchStatus.IN_PROGRESS.value, "in_progress_at": str(int(time.time())),
                "total": str(len(items)), "completed": "0", "failed": "0"}),
        ))

    async def fail(self, batch_id: str, errors: builtins.list[dict]) -> bool:
        """validating -> failed, with OpenAI's errors list (code, message, line)."""
        return await self.write_if_status(batch_id, (BatchStatus.VALIDATING,), lambda pipe: (
            pipe.hset(keys.batch_key(batch_id), mapping={
                "status": BatchStatus.FAILED.value, "failed_at": str(int(time.time())), "errors": json.dumps(errors)}),
            pipe.srem(keys.ACTIVE, batch_id),
        ))

    async def write_if_status(self, batch_id: str, allowed: tuple[BatchStatus, ...],
                         writes: Callable[[Pipeline], object]) -> bool:
        """Run `writes(pipe)` in a MULTI only if the batch's status is in `allowed` (WATCH)."""
        key = keys.batch_key(batch_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    status = await pipe.hget(key, "status")
                    if status not in {s.value for s in allowed}:
                        await pipe.unwatch()
                        return False
                    pipe.multi()
                    writes(pipe)
                    await pipe.execute()
                    self.changed.set()
                    return True
                except WatchError:
                    continue  # the hash changed (a count, a cancel): look again
