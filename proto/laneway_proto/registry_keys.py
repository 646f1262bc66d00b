"""The worker registry in Redis: the keys and the clock that workers write and gateways read.

A contract between processes, like worker.proto beside it, so it is written once, here:
workers/registry.py writes the registry and gateway/registry_watch.py reads it, and both
import this module (the gateway never imports workers). Written by hand, not generated;
pure Python, no Redis client.

    lw:workers              ZSET    address -> expiry (ms, Redis clock)
    lw:worker:ADDRESS       STRING  JSON {address, model, capacity, worker_id}, expires too

Expiries are on Redis's clock, never a process's own: a worker and a gateway on different
hosts, with clocks apart, still agree on which entries are alive.
"""

from __future__ import annotations

INDEX_KEY = "lw:workers"
ADVERT_PREFIX = "lw:worker:"  # + the worker's address (host:port)

# The first lines of every registry script: `now` is the Redis server's time, in ms.
LUA_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
