"""auth's abuse limits in Redis (services/auth/domain/limits.py decides the policy; this applies
it atomically): failed-login gates, and the registrations bucket. Redis's errors become the
domain's `Unreachable` (the limits then fail open).

One hash per gate, `<ns>:login:<kind>:...`, with fields `f` (failures), `u` (no attempt before
this time), `l` (last failure) and `i:<attempt>` (each attempt in flight, until its deadline),
expiring once it is worth nothing. Keys of one account share a hash tag (`{account}`), so a Redis
Cluster keeps them together. Each call runs one Lua script on one key, so any number of
concurrent attempts on any number of auth replicas are admitted one at a time: no more attempts
are in flight than there are free failures left (300 guesses at once: the free ones get through,
then one more once they have failed, the rest are refused).
"""
from shared.redis_slots import RedisClient

from services.auth.domain.limits import IN_FLIGHT_SECONDS, GateRule
from services.auth.storage.redis_errors import reachable
from shared.ratelimit import TokenBucket

# KEYS: the gate. ARGV: now, free, window, keep (s), the attempt's id, how long it may stay in
# flight (s), then the backoff schedule: the wait after the 1st, 2nd, ... failure past the free
# ones (the last one repeats). Returns '0' when the attempt was admitted (in flight), 'busy' when
# the free failures left are all spoken for by attempts in flight, else the seconds still to
# wait. Attempts in flight are fields `i:<id>` (their deadline); one past its deadline was never
# settled (its auth replica died mid-check) and counts as a failure.
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
local inflight = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'i:' then
    if tonumber(fields[i + 1]) < now then
      redis.call('HDEL', KEYS[1], fields[i])
      failures, last = failures + 1, now
    else
      inflight = inflight + 1
    end
  end
end
if now < untill then
  redis.call('HSET', KEYS[1], 'f', failures, 'l', last)
  return tostring(untill - now)
end
if failures >= free then
  local schedule = #ARGV - 6
  untill = now + tonumber(ARGV[6 + math.min(failures + 1 - free, schedule)])
elseif failures + inflight >= free then
  redis.call('HSET', KEYS[1], 'f', failures, 'l', last)
  return 'busy'
end
redis.call('HSET', KEYS[1], 'f', failures, 'u', untill, 'l', last, 'i:' .. ARGV[5], now + tonumber(ARGV[6]))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return '0'
"""

# An attempt in flight is settled: a failure counts (and starts the window afresh), anything else
# only leaves. Settling twice, or after the deadline made it a failure, does nothing.
_SETTLE = """
if redis.call('HDEL', KEYS[1], 'i:' .. ARGV[1]) == 1 and ARGV[2] == '1' then
  redis.call('HINCRBY', KEYS[1], 'f', 1)
  redis.call('HSET', KEYS[1], 'l', ARGV[3])
end
return 0
"""


class RedisGates:
    """The `GateStore` port (services/auth/domain/ports.py)."""

    def __init__(self, redis: RedisClient, namespace: str):
        self.redis = redis
        self.prefix = f"{namespace}:login:"
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)

    async def admit(self, key: str, attempt_id: str, now: float, rule: GateRule) -> float | None:
        args: list[str | int] = [
            repr(now), rule.free, repr(rule.window_seconds), max(rule.keep_seconds(), IN_FLIGHT_SECONDS + 1),
            attempt_id, IN_FLIGHT_SECONDS, *(repr(s) for s in rule.schedule()),
        ]
        with reachable():
            answer = await self._admit(keys=[self.prefix + key], args=args)
        return None if answer in (b"busy", "busy") else float(answer)

    async def settle(self, key: str, attempt_id: str, failed: bool, now: float) -> None:
        with reachable():
            await self._settle(keys=[self.prefix + key], args=[attempt_id, int(failed), repr(now)])

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

    async def take_many(self, keys: list[str]) -> list[bool]:
        with reachable():
            return await super().take_many(keys)
