"""Workers that announce themselves in Redis join and leave this gateway's pool at run time.

The registry is written by workers (workers/registry.py); its keys and clock are the
contract in proto/laneway_proto/registry_keys.py, which both sides import (gateway code
never imports workers).

Every `interval_s` the gateway reads the unexpired addresses: new ones are added to the
pool, ones this watch added that are gone are removed. Static workers (--worker) are
never removed by the registry. When Redis is unreachable the pool stays as it is: a
Redis outage must not empty the rotation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.worker_pool import WorkerPool
from laneway_proto.registry_keys import ADVERT_PREFIX, INDEX_KEY, LUA_NOW_MS

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0

_LIVE = LUA_NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class RegistryWatch:
    def __init__(self, redis: Redis, pool: WorkerPool, interval_s: float = 1.0) -> None:
        self.redis = redis
        self.pool = pool
        self.interval_s = interval_s
        self.added: set[str] = set()  # addresses this watch put in the pool (only these it removes)
        self._live = redis.register_script(_LIVE)
        self._task: asyncio.Task[None] | None = None
        self._last_warning = -LOG_EVERY_S
        self._is_stopped = False

    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.create_task(self._watch(), name="registry-watch")

    async def stop(self) -> None:
        self._is_stopped = True  # also checked by the loop, in case a cancel is lost in a Redis call
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sync(self) -> None:
        try:
            live = set(await self._live(keys=[INDEX_KEY]))
        except RedisError as exc:
            now = time.monotonic()
            if now - self._last_warning >= LOG_EVERY_S:
                self._last_warning = now
                log.warning("worker registry unreadable (%s); keeping the current workers", exc)
            return
        in_pool = {w.address for w in self.pool.workers}
        for address in sorted(live - in_pool):
            await self.pool.add(address)
            self.added.add(address)
            log.info("worker %s joined from the registry (%s)", address, await self._describe(address))
        for address in sorted(self.added - live):
            self.added.discard(address)
            await self.pool.remove(address)
            log.warning("worker %s left the registry (stopped heartbeating or withdrew)", address)

    async def _describe(self, address: str) -> str:
        try:
            raw = await self.redis.get(ADVERT_PREFIX + address)
            advert = json.loads(raw) if raw else {}
        except (RedisError, ValueError):
            advert = {}
        return f"model {advert.get('model', '?')}, capacity {advert.get('capacity', '?')}"

    async def _watch(self) -> None:
        while not self._is_stopped:
            await asyncio.sleep(self.interval_s)
            await self.sync()
