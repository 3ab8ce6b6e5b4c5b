"""auth's abuse limits in Redis (services/auth/domain/limits.py decides the policy; this applies
it atomically): failed-login gates, and the registrations bucket. Redis's errors become the
domain's `Unreachable` (the limits then fail open).

One hash per gate, `<ns>:login:<kind>:...`, with fields `f` (counted attempts), `u` (no attempt
before this time) and `l` (last counted attempt), expiring once it is worth nothing. Keys of one
account share a hash tag (`{account}`), so a Redis Cluster keeps them together. Each call runs
one Lua script on one key, so any number of concurrent attempts on any number of auth replicas
are admitted one at a time, with no retries (300 guesses at once: the free ones and one more
get through, the rest are refused).
"""
import redis.asyncio as aioredis

from services.auth.storage.redis_errors import reachable
from shared.ratelimit import TokenBucket

# KEYS: the gate. ARGV: now, free, window, keep (s), then the backoff schedule: the wait after
# the 1st, 2nd, ... attempt past the free ones (the last one repeats). Returns 0 when the
# attempt was admitted and counted, else the seconds still to wait (as a string).
_ADMIT = """
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'f', 'u', 'l')
local failures = tonumber(state[1]) or 0
local untill = tonumber(state[2]) or 0
local last = tonumber(state[3]) or now
if now - last > window then
  failures, untill = 0, 0
end
if now < untill then
  return tostring(untill - now)
end
failures = failures + 1
untill = 0
if failures > free then
  local schedule = #ARGV - 4
  untill = now + tonumber(ARGV[4 + math.min(failures - free, schedule)])
end
redis.call('HSET', KEYS[1], 'f', failures, 'u', untill, 'l', now)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 0
"""

# An admitted attempt that was no failure: its count is taken back (the wait it set stays).
_TAKE_BACK = """
local failures = tonumber(redis.call('HGET', KEYS[1], 'f'))
if failures ~= nil and failures > 0 then
  redis.call('HSET', KEYS[1], 'f', failures - 1)
end
return 0
"""


class RedisGates:
    """The `GateStore` port (services/auth/domain/ports.py)."""

    def __init__(self, redis: aioredis.Redis, namespace: str):
        self.redis = redis
        self.prefix = f"{namespace}:login:"
        self._admit = redis.register_script(_ADMIT)
        self._take_back = redis.register_script(_TAKE_BACK)

    async def admit(
        self, key: str, now: float, free: int, window: float, keep_seconds: int, schedule: list[float]
    ) -> float:
        args: list[str | int] = [repr(now), free, repr(window), keep_seconds, *(repr(s) for s in schedule)]
        with reachable():
            return float(await self._admit(keys=[self.prefix + key], args=args))

    async def take_back(self, key: str) -> None:
        with reachable():
            await self._take_back(keys=[self.prefix + key])

    async def delete(self, key: str) -> None:
        with reachable():
            await self.redis.delete(self.prefix + key)

    async def remember(self, key: str, seconds: float) -> None:
        with reachable():
            await self.redis.set(self.prefix + key, "1", ex=int(seconds))

    async def remembered(self, key: str) -> bool:
        with reachable():
            return bool(await self.redis.exists(self.prefix + key))


class RedisRateBucket(TokenBucket):
    """The `RateBucket` port (services/auth/domain/ports.py): shared/ratelimit.py's bucket."""

    async def take(self, key: str) -> bool:
        with reachable():
            return await super().take(key)
