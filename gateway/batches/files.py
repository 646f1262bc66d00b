"""Files of the Batch API: uploaded inputs and written outputs, per tenant, in Redis.

A tenant sees only its own files: every lookup takes the caller's tenant and treats a
file of another tenant exactly like a missing one (the route answers 404, not 403, so
ids of other tenants cannot be probed).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from gateway.batches import keys
from gateway.batches.paging import page_ids
from gateway.batches.records import FileRecord
from gateway.redis_types import fields, maybe_text, text_hash


class FileStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def create(self, tenant: str, purpose: str, filename: str, content: str) -> FileRecord:
        record = FileRecord(keys.new_file_id(), tenant, purpose, filename, len(content.encode()), int(time.time()))
        async with self.redis.pipeline(transaction=True) as pipe:
            self.write(pipe, record, content)
            await pipe.execute()
        return record

    @staticmethod
    def write(pipe: Pipeline, record: FileRecord, content: str) -> None:
        """Queue the writes of one file on a pipeline (the finisher adds its own to one transaction)."""
        pipe.set(keys.content_key(record.id), content)
        pipe.hset(keys.file_key(record.id), mapping=fields(record.to_hash()))
        pipe.zadd(keys.files_index(record.tenant), {record.id: record.created_at})

    async def get(self, file_id: str, tenant: str) -> FileRecord | None:
        h = await self.redis.hgetall(keys.file_key(file_id))
        if not h or h.get("tenant") != tenant:
            return None
        return FileRecord.from_hash(text_hash(h))

    async def content(self, file_id: str, tenant: str) -> str | None:
        if await self.get(file_id, tenant) is None:
            return None
        return maybe_text(await self.redis.get(keys.content_key(file_id)))

    async def delete(self, file_id: str, tenant: str) -> bool:
        record = await self.get(file_id, tenant)
        if record is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.file_key(file_id), keys.content_key(file_id))
            pipe.zrem(keys.files_index(tenant), file_id)
            await pipe.execute()
        return True

    async def list(self, tenant: str, *, limit: int, after: str | None, newest_first: bool,
                   purpose: str | None) -> tuple[list[FileRecord], bool]:
        """A page of the tenant's files and whether more follow."""
        ids = await page_ids(self.redis, keys.files_index(tenant), after, newest_first)
        records: list[FileRecord] = []
        for file_id in ids:
            record = await self.get(file_id, tenant)
            if record is not None and (purpose is None or record.purpose == purpose):
                records.append(record)
                if len(records) > limit:
                    break
        return records[:limit], len(records) > limit

