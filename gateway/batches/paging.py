"""Cursor paging over a created_at index, as OpenAI's list endpoints do it (`after` = an id)."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.redis_types import texts

MAX_SCAN = 10_000  # ids read per page request; listing is for people, not for bulk export


async def page_ids(redis: Redis, index: str, after: str | None, newest_first: bool) -> list[str]:
    """Ids in the index after the cursor id (an unknown cursor starts from the beginning)."""
    rank = None
    if after is not None:
        rank = await (redis.zrevrank(index, after) if newest_first else redis.zrank(index, after))
    start = rank + 1 if isinstance(rank, int) else 0  # an int, or None for an unknown id
    stop = start + MAX_SCAN - 1
    return texts(await (redis.zrevrange(index, start, stop) if newest_first else redis.zrange(index, start, stop)))
