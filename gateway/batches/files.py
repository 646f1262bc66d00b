"""Files of the Batch API: uploaded inputs and written outputs, per tenant, in Redis.

A tenant sees only its own files: every lookup takes the caller's tenant and treats a
file of another tenant exactly like a missing one (the route answers 404, not 403, so
ids of other tenants cannot be probed).

Storage is bounded two ways. Every file expires (its keys carry a TTL: the upload's
`expires_after`, else the gateway's default), and each tenant has a quota of bytes
stored: `lw:tenant:T:file-bytes` maps its file ids to sizes, entries of expired files
are pruned before a check, and the check and the reservation are one script, so two
uploads racing cannot both squeeze under the quota.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from gateway.batches import keys
from gateway.batches.paging import page_ids
from gateway.batches.records import FileRecord
from gateway.redis_types import fields, maybe_text, text_hash

# KEYS: the tenant's file-bytes hash. ARGV: quota, file id, bytes. 1: reserved; else the bytes in use.
_RESERVE = """
local used = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do used = used + tonumber(n) end
if used + tonumber(ARGV[3]) > tonumber(ARGV[1]) then return {0, used} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return {1, used}
"""


class QuotaExceeded(Exception):
    def __init__(self, used: int, quota: int) -> None:
        super().__init__(f"{used} of {quota} bytes in use")
        self.used = used
        self.quota = quota


class FileStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._reserve = redis.register_script(_RESERVE)

    async def create(self, tenant: str, purpose: str, filename: str, content: str, *, ttl_s: int,
                     quota_bytes: int) -> FileRecord:
        """Store an upload; QuotaExceeded when the tenant's files would pass quota_bytes."""
        now = int(time.time())
        record = FileRecord(keys.new_file_id(), tenant, purpose, filename, len(content.encode()), now, now + ttl_s)
        await self._prune(tenant)
        reserved, used = await self._reserve(keys=[keys.file_bytes_key(tenant)],
                                             args=[quota_bytes, record.id, record.num_bytes])
        if not reserved:
            raise QuotaExceeded(int(used), quota_bytes)
        async with self.redis.pipeline(transaction=True) as pipe:
            self.write(pipe, record, content)
            await pipe.execute()
        return record

    async def num_bytes_used(self, tenant: str) -> int:
        await self._prune(tenant)
        return sum(int(n) for n in await self.redis.hvals(keys.file_bytes_key(tenant)))

    async def _prune(self, tenant: str) -> None:
        """Forget the sizes (and index entries) of the tenant's files that have expired."""
        file_ids: list[str] = list(await self.redis.hkeys(keys.file_bytes_key(tenant)))  # type: ignore[arg-type]
        if not file_ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for file_id in file_ids:
            pipe.exists(keys.file_key(file_id))
        gone = [file_id for file_id, exists in zip(file_ids, await pipe.execute()) if not exists]
        if gone:
            await self.redis.hdel(keys.file_bytes_key(tenant), *gone)
            await self.redis.zrem(keys.files_index(tenant), *gone)

    @staticmethod
    def write(pipe: Pipeline, record: FileRecord, content: str) -> None:
        """Queue the writes of one file on a pipeline (the finisher adds its own to one transaction).
        A file with expires_at gets it as the TTL of its keys."""
        ttl_s = None if record.expires_at is None else max(1, record.expires_at - int(time.time()))
        pipe.set(keys.content_key(record.id), content, ex=ttl_s)
        pipe.hset(keys.file_key(record.id), mapping=fields(record.to_hash()))
        if ttl_s is not None:
            pipe.expire(keys.file_key(record.id), ttl_s)
        pipe.zadd(keys.files_index(record.tenant), {record.id: record.created_at})
        pipe.hset(keys.file_bytes_key(record.tenant), record.id, record.num_bytes)

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
            pipe.hdel(keys.file_bytes_key(tenant), file_id)
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

