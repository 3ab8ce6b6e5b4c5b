"""Token buckets in Redis, shared by every gateway: `rate_per_second` refill, up to `burst`.

One hash per bucket, `<namespace>:ratelimit:<name>:<key>`, holding `tokens` and `ts` (the
last refill, in microseconds of Redis server time). A single Lua script refills by the time
elapsed, takes one token if there is one and writes the hash back, so concurrent takes from
any number of gateways never lose or double-count a token. The clock is Redis's own (`TIME`),
so gateways whose clocks disagree still agree on the bucket. A key idle long enough to have
refilled completely expires: an absent key is a full bucket.
"""
import logging
import math

import redis.asyncio as aioredis

from shared.logs import log_event

# KEYS: the bucket hash; ARGV: rate per second, burst, expiry in ms. Returns 1 if a token was taken.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = burst, now
end
if now > ts then  -- a server clock stepped back refills nothing until it catches up
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
  ts = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
-- Numbers go to Redis as "%.17g" (exact for microsecond times; Lua's tostring would round).
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', ts)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return taken
"""


class FailOpen:
    """A limiter that lets requests through while Redis is away logs the outage once, and its
    end once (not once per request)."""

    def __init__(self, what: str, logger: logging.Logger):
        self.what = what
        self.logger = logger
        self.failing = False

    def failed(self, exc: BaseException) -> None:
        if not self.failing:
            self.failing = True
            log_event(self.logger, f"{self.what}.unavailable", logging.WARNING, error=repr(exc))

    def worked(self) -> None:
        if self.failing:
            self.failing = False
            log_event(self.logger, f"{self.what}.restored")


class TokenBucket:
    def __init__(self, redis: aioredis.Redis, namespace: str, name: str, rate_per_second: float, burst: int):
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate_per_second > 0 and burst >= 1")
        self.redis = redis
        self.prefix = f"{namespace}:ratelimit:{name}:"
        self.rate_per_second = rate_per_second
        self.burst = burst
        # Time to refill from empty, plus a second: after that the key holds nothing worth keeping.
        self.expiry_ms = math.ceil((burst / rate_per_second + 1) * 1000)
        self._take = redis.register_script(_TAKE)

    def key(self, key: str) -> str:
        return self.prefix + key

    async def take(self, key: str) -> bool:
        """Take one token from `key`'s bucket; False when it is empty. Redis errors propagate."""
        taken = await self._take(keys=[self.key(key)], args=[self.rate_per_second, self.burst, self.expiry_ms])
        return int(taken) == 1
