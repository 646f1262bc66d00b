"""A worker announces itself in Redis so gateways find it without a restart.

The keys and clock are the contract in proto/laneway_proto/registry_keys.py, which
gateway/registry_watch.py (the reader, which must not import workers) imports too.

The worker refreshes both keys every TTL/3; a worker that stops (crash, SIGKILL, partition)
drops out of every gateway's rotation within about one TTL. A worker that drains
withdraws at once, so gateways stop sending before it stops serving. A Redis outage is
logged and ridden out: the worker keeps serving and re-registers when Redis returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from laneway_proto.registry_keys import ADVERT_PREFIX, INDEX_KEY, LUA_NOW_MS

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 6.0

_HEARTBEAT = LUA_NOW_MS + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return now
"""


@dataclass(frozen=True)
class Advert:
    address: str  # host:port gateways dial
    model: str
    capacity: int  # sequence slots (max_num_seqs)
    worker_id: str


class Registration:
    def __init__(self, redis_url: str, advert: Advert, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.advert = advert
        self.ttl_ms = int(ttl_s * 1000)
        # One quick retry: a pooled connection that died with a restarted Redis reconnects.
        self.redis = Redis.from_url(redis_url, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0,
                                    retry=Retry(NoBackoff(), 1, (ConnectionError, TimeoutError)),
                                    health_check_interval=10)
        self._heartbeat = self.redis.register_script(_HEARTBEAT)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._beat_forever(), name="registry-heartbeat")

    async def withdraw(self) -> None:
        """Leave every gateway's rotation now (drain); stop heartbeating."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.redis.zrem(INDEX_KEY, self.advert.address)
            await self.redis.delete(ADVERT_PREFIX + self.advert.address)
        except RedisError as exc:
            log.warning("could not withdraw from the registry (%s); the entry expires in %.0fs", exc,
                        self.ttl_ms / 1000)
        await self.redis.aclose()

    async def beat(self) -> bool:
        try:
            await self._heartbeat(keys=[INDEX_KEY, ADVERT_PREFIX + self.advert.address],
                                  args=[self.advert.address, self.ttl_ms, json.dumps(asdict(self.advert))])
            return True
        except RedisError as exc:
            log.warning("registry heartbeat failed (%s); still serving, retrying", exc)
            return False

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            await self.beat()
