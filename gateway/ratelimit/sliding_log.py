"""The counting itself: a sliding log per scope, checked and written by one Lua script.

Each scope keeps a ZSET of the requests admitted in the last `window` (id -> time, read
from Redis's own clock so replicas with skewed clocks agree) and a HASH of the tokens
each one holds, plus their running `#total`. "At most rpm requests and tpm tokens in any
rolling minute" is then exact: no fixed-window edge lets 2x through.

Admission is one script for all of a request's scopes: trim what left the window, check
every scope, and only if all have room record the request in all of them. Redis runs a
script atomically, so N gateways admitting at once never read-then-write past a limit.
Settling (after the request finished) rewrites that request's tokens to what it really
used and adjusts `#total` by the difference; it may rise above the reservation (the
prompt estimate was low) and is then counted as used, never refused after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.ratelimit.scope import Scope

WINDOW_MS = 60_000
NO_LIMIT = -1

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, cost, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 2

local function trim(log, tok)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  if #old == 0 then return end
  local freed = 0
  for _, m in ipairs(old) do
    freed = freed + tonumber(redis.call('HGET', tok, m) or '0')
    redis.call('HDEL', tok, m)
  end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  redis.call('HINCRBY', tok, '#total', -freed)
end

-- ms until the (count - rpm)-th oldest request leaves, making room for one more
local function request_wait(log, count, rpm)
  local e = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
  return tonumber(e[2]) + window - now
end

-- ms until enough of the oldest requests' tokens leave for `cost` more to fit
local function token_wait(log, tok, total, tpm)
  local need = total + cost - tpm
  local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + tonumber(redis.call('HGET', tok, entries[i]) or '0')
    if freed >= need then return tonumber(entries[i + 1]) + window - now end
  end
  return window
end

local admitted, wait, too_large, blocker = 1, 0, 0, 0
local counts, totals = {}, {}
for i = 1, n do
  local log, tok = KEYS[2 * i - 1], KEYS[2 * i]
  local rpm, tpm = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  trim(log, tok)
  local count = redis.call('ZCARD', log)
  local total = tonumber(redis.call('HGET', tok, '#total') or '0')
  counts[i], totals[i] = count, total
  local blocked, w = false, 0
  if rpm >= 0 and count >= rpm then
    blocked, w = true, request_wait(log, count, rpm)
  end
  if tpm >= 0 and total + cost > tpm then
    blocked = true
    if cost > tpm then
      too_large, w = 1, math.max(w, window)
    else
      w = math.max(w, token_wait(log, tok, total, tpm))
    end
  end
  if blocked then
    admitted = 0
    if w > wait or blocker == 0 then wait, blocker = w, i end
  end
end

if admitted == 1 then
  for i = 1, n do
    local log, tok = KEYS[2 * i - 1], KEYS[2 * i]
    redis.call('ZADD', log, now, id)
    redis.call('HSET', tok, id, cost)
    redis.call('HINCRBY', tok, '#total', cost)
    redis.call('PEXPIRE', log, window)
    redis.call('PEXPIRE', tok, window)
    counts[i], totals[i] = counts[i] + 1, totals[i] + cost
  end
end

local out = {admitted, wait, too_large, blocker}
for i = 1, n do
  local last = redis.call('ZRANGE', KEYS[2 * i - 1], -1, -1, 'WITHSCORES')
  local reset = 0
  if #last == 2 then reset = tonumber(last[2]) + window - now end
  table.insert(out, counts[i])
  table.insert(out, totals[i])
  table.insert(out, reset)
end
return out
"""

_SETTLE = """
for _, tok in ipairs(KEYS) do
  local old = redis.call('HGET', tok, ARGV[1])
  if old then
    redis.call('HSET', tok, ARGV[1], ARGV[2])
    redis.call('HINCRBY', tok, '#total', tonumber(ARGV[2]) - tonumber(old))
  end
end
return 0
"""


@dataclass(frozen=True)
class ScopeUsage:
    """One scope right after the check (including this request if it was admitted)."""

    scope: Scope
    num_requests: int
    num_tokens: int
    reset_ms: int  # until every request now in the window has left it (OpenAI's "resets to initial")

    @property
    def remaining_requests(self) -> int | None:
        return None if self.scope.rpm is None else max(0, self.scope.rpm - self.num_requests)

    @property
    def remaining_tokens(self) -> int | None:
        return None if self.scope.tpm is None else max(0, self.scope.tpm - self.num_tokens)


@dataclass(frozen=True)
class Verdict:
    is_admitted: bool
    retry_after_ms: int  # refused: until the blocking scope has room for this request
    is_too_large: bool  # refused: the request alone needs more tokens than a scope's tpm
    blocking: Scope | None
    usage: tuple[ScopeUsage, ...]


class SlidingLog:
    def __init__(self, redis: Redis, window_ms: int = WINDOW_MS) -> None:
        self.window_ms = window_ms
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)

    async def admit(self, scopes: tuple[Scope, ...], request_id: str, num_tokens: int) -> Verdict:
        if not scopes:
            raise ValueError("admit needs at least one scope")
        keys = [k for s in scopes for k in (s.log_key, s.tokens_key)]
        args: list[str | int] = [request_id, num_tokens, self.window_ms]
        for s in scopes:
            args += [NO_LIMIT if s.rpm is None else s.rpm, NO_LIMIT if s.tpm is None else s.tpm]
        out = [int(x) for x in await self._admit(keys=keys, args=args)]
        admitted, wait, too_large, blocker = out[:4]
        usage = tuple(ScopeUsage(s, *out[4 + 3 * i: 7 + 3 * i]) for i, s in enumerate(scopes))
        return Verdict(bool(admitted), wait, bool(too_large), scopes[blocker - 1] if blocker else None, usage)

    async def settle(self, scopes: tuple[Scope, ...], request_id: str, num_tokens: int) -> None:
        await self._settle(keys=[s.tokens_key for s in scopes], args=[request_id, num_tokens])
