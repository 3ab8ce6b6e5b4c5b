"""Token buckets in Redis, shared by every gateway: `rate_per_second` refill, up to `burst`.

One hash per bucket, `<namespace>:ratelimit:<name>:{r<b>}:<key>`, holding `tokens` and `ts` (the
last refill, in microseconds of Redis server time). A single Lua script refills by the time
elapsed, takes one token if there is one and writes the hash back, so concurrent takes from
any number of gateways never lose or double-count a token. The clock is Redis's own (`TIME`),
so gateways whose clocks disagree still agree on the bucket. A key idle long enough to have
refilled completely expires: an absent key is a full bucket.

`{r<b>}` is the hash tag of the key's slot bucket (b = CRC32(key) % Settings.redis_buckets;
shared/redis_slots.py): takes coalesced into one script call (CoalescedTakes) are split into one
call per bucket on a Redis Cluster, which refuses a script whose keys span slots. On one Redis
they stay one call.
"""
import asyncio
import logging
import math

from shared.logs import log_event
from shared.redis_slots import DEFAULT_BUCKETS, RedisClient, bucket_of, is_cluster, tag

# KEYS: bucket hashes (one take each; a key may repeat); ARGV: rate per second, burst, expiry
# in ms. Returns 1 or 0 per key: whether a token was taken.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local taken = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens, ts = burst, now
  end
  if now > ts then  -- a server clock stepped back refills nothing until it catches up
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
    ts = now
  end
  taken[i] = 0
  if tokens >= 1 then
    tokens = tokens - 1
    taken[i] = 1
  end
  -- Numbers go to Redis as "%.17g" (exact for microsecond times; Lua's tostring would round).
  redis.call('HSET', key, 'tokens', tokens, 'ts', ts)
  redis.call('PEXPIRE', key, ARGV[3])
end
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
    def __init__(
        self, redis: RedisClient, namespace: str, name: str, rate_per_second: float, burst: int,
        buckets: int = DEFAULT_BUCKETS,
    ):
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate_per_second > 0 and burst >= 1")
        self.redis = redis
        self.prefix = f"{namespace}:ratelimit:{name}:"
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.buckets = buckets
        self.cluster = is_cluster(redis)
        # Time to refill from empty, plus a second: after that the key holds nothing worth keeping.
        self.expiry_ms = math.ceil((burst / rate_per_second + 1) * 1000)
        self._take = redis.register_script(_TAKE)

    def key(self, key: str) -> str:
        return f"{self.prefix}{tag('r', bucket_of(key, self.buckets))}:{key}"

    async def take(self, key: str) -> bool:
        """Take one token from `key`'s bucket; False when it is empty. Redis errors propagate."""
        return (await self.take_many([key]))[0]

    async def take_many(self, keys: list[str]) -> list[bool]:
        """One token from each key's bucket (in order; a key named twice gives two), in one
        script call per slot bucket on a Redis Cluster (one call on one Redis); whether each was
        taken. A call that fails fails the whole take (its error propagates)."""
        names = [self.key(k) for k in keys]
        if not self.cluster:
            return await self._take_in_one_slot(names)
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(bucket_of(key, self.buckets), []).append(i)
        answers = await asyncio.gather(*(self._take_in_one_slot([names[i] for i in at]) for at in groups.values()))
        taken = [False] * len(names)
        for at, answer in zip(groups.values(), answers, strict=True):
            for i, ok in zip(at, answer, strict=True):
                taken[i] = ok
        return taken

    async def _take_in_one_slot(self, names: list[str]) -> list[bool]:
        taken = await self._take(keys=names, args=[self.rate_per_second, self.burst, self.expiry_ms])
        return [int(t) == 1 for t in taken]


class CoalescedTakes:
    """Takes from one bucket by many callers in the same turn of the event loop go to Redis as
    one script call: a gateway's sockets each taking a token per message.send would otherwise
    cost a Redis round trip per message. With `timeout`, a call that Redis has not answered
    within it fails every taker with TimeoutError: one timer per Redis call, not one per take."""

    def __init__(self, bucket: TokenBucket, timeout: float | None = None):
        self.bucket = bucket
        self.timeout = timeout
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, key: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((key, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.create_task(self._take(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take(self, pending: list[tuple[str, asyncio.Future[bool]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                taken = await self.bucket.take_many([key for key, _ in pending])
        except Exception as exc:  # Redis away: every caller decides (the gateway fails open)
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), ok in zip(pending, taken, strict=True):
            if not future.done():
                future.set_result(ok)
