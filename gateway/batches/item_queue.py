"""A batch's lines as a Redis Stream worked by a consumer group: durable, shared, answered once.

Why a Stream with a consumer group:
- Durable: the stream is written (with the batch turning in_progress) in one MULTI/EXEC
  when validation passes, so a batch either has all its lines queued or none.
- Shared: every gateway is a consumer of group "runners"; XREADGROUP hands each line to
  exactly one of them, so two replicas never start the same line.
- Crash-safe: a line stays in the group's pending list until it is answered. A gateway
  refreshes its claims while it works (`refresh`, every third of the claim timeout); one
  that died (SIGKILL) stops refreshing, and after `claim_idle` another takes its lines
  over with XAUTOCLAIM. A line is thus retried, never lost.
- Answered once: the answer goes to a results hash with HSETNX keyed by custom_id, in
  one script with the count update and the XACK. A line that somehow ran twice (a claim
  lost to a long stall) still has exactly one answer, the first; the output files are
  built from that hash.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from gateway.batches import keys
from gateway.redis_types import fields, group_read, maybe_texts, stream_entries

PAGE = 500

# KEYS: results hash, items stream, batch hash. ARGV: custom_id, answer, ok (1/0), entry id ('' = none), group.
# A batch already final has its files written: a late answer is dropped, not counted.
_RECORD = """
local status = redis.call('HGET', KEYS[3], 'status')
if status == 'completed' or status == 'failed' or status == 'expired' or status == 'cancelled' then
  return 0
end
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if added == 1 then
  if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[3], 'completed', 1)
  else redis.call('HINCRBY', KEYS[3], 'failed', 1) end
end
if ARGV[4] ~= '' then redis.call('XACK', KEYS[2], ARGV[5], ARGV[4]) end
return added
"""

# KEYS: items stream. ARGV: group, consumer, entry ids... Re-claims (resets the idle time of)
# the entries this consumer still owns; returns those another consumer has taken over.
_REFRESH = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""


@dataclass(frozen=True)
class Item:
    """One input line as queued: where it was, its custom_id, its request body."""

    line: int
    custom_id: str
    body: dict

    def to_fields(self) -> dict[str, str]:
        return {"line": str(self.line), "custom_id": self.custom_id, "body": json.dumps(self.body)}

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> Item:
        return cls(int(f["line"]), f["custom_id"], json.loads(f["body"]))


@dataclass(frozen=True)
class Claimed:
    entry_id: str
    item: Item
    deliveries: int = 1  # how many times the group has handed this line out, this time included


@dataclass(frozen=True)
class Answer:
    """The one answer of a line: its output-file line, and which file it goes to."""

    ok: bool
    line: dict

    def dumps(self) -> str:
        return json.dumps({"ok": self.ok, "line": self.line})

    @classmethod
    def loads(cls, raw: str) -> Answer:
        d = json.loads(raw)
        return cls(d["ok"], d["line"])


class ItemQueue:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._record = redis.register_script(_RECORD)
        self._refresh = redis.register_script(_REFRESH)

    @staticmethod
    def enqueue(pipe: Pipeline, batch_id: str, items: list[Item]) -> None:
        """Queue the stream's creation on a transaction (see BatchStore.start)."""
        stream = keys.items_key(batch_id)
        pipe.delete(stream, keys.results_key(batch_id))
        for item in items:
            pipe.xadd(stream, fields(item.to_fields()))
        pipe.xgroup_create(stream, keys.GROUP, id="0")

    async def claim_new(self, batch_id: str, consumer: str, count: int) -> list[Claimed]:
        try:
            resp = await self.redis.xreadgroup(keys.GROUP, consumer, {keys.items_key(batch_id): ">"}, count=count)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # finished and cleaned up since we looked
                return []
            raise
        return [Claimed(eid, Item.from_fields(f)) for _, entries in group_read(resp) for eid, f in entries if f]

    async def claim_stale(self, batch_id: str, consumer: str, min_idle_ms: int, count: int,
                          cursor: str) -> tuple[list[Claimed], str]:
        """Lines whose claimer has been silent for min_idle_ms; returns them and the next cursor."""
        try:
            resp = await self.redis.xautoclaim(keys.items_key(batch_id), keys.GROUP, consumer, min_idle_ms,
                                               start_id=cursor, count=count)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return [], "0-0"
            raise
        next_cursor, entries = resp[0], resp[1]
        entries = [(eid, f) for eid, f in entries if f]
        deliveries = await self._deliveries(batch_id, [eid for eid, _ in entries])
        return [Claimed(eid, Item.from_fields(f), n) for (eid, f), n in zip(entries, deliveries)], next_cursor

    async def _deliveries(self, batch_id: str, entry_ids: list[str]) -> list[int]:
        """Each pending entry's delivery count (XAUTOCLAIM has just counted its own)."""
        if not entry_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for eid in entry_ids:
            pipe.xpending_range(keys.items_key(batch_id), keys.GROUP, min=eid, max=eid, count=1)
        rows = await pipe.execute()
        return [row[0]["times_delivered"] if row else 1 for row in rows]

    async def refresh(self, batch_id: str, consumer: str, entry_ids: list[str]) -> list[str]:
        """Keep our claims alive; returns the entry ids we no longer own."""
        if not entry_ids:
            return []
        try:
            return list(await self._refresh(keys=[keys.items_key(batch_id)],
                                            args=[keys.GROUP, consumer, *entry_ids]))
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return list(entry_ids)
            raise

    async def record(self, batch_id: str, custom_id: str, answer: Answer, entry_id: str = "") -> bool:
        """Store the line's answer unless it has one; ack the entry either way. True if stored."""
        added = await self._record(keys=[keys.results_key(batch_id), keys.items_key(batch_id),
                                         keys.batch_key(batch_id)],
                                   args=[custom_id, answer.dumps(), "1" if answer.ok else "0", entry_id,
                                         keys.GROUP])
        return bool(added)

    async def is_answered(self, batch_id: str, custom_id: str) -> bool:
        return bool(await self.redis.hexists(keys.results_key(batch_id), custom_id))

    async def items(self, batch_id: str) -> AsyncIterator[list[Item]]:
        """All lines in input order, a page at a time."""
        start = "-"
        while True:
            entries = stream_entries(await self.redis.xrange(keys.items_key(batch_id), min=start, count=PAGE))
            if not entries:
                return
            yield [Item.from_fields(f) for _, f in entries]
            if len(entries) < PAGE:
                return
            start = "(" + entries[-1][0]

    async def answers(self, batch_id: str, custom_ids: list[str]) -> list[Answer | None]:
        raws = maybe_texts(await self.redis.hmget(keys.results_key(batch_id), custom_ids))
        return [None if r is None else Answer.loads(r) for r in raws]
