"""Keys on a Redis Cluster: what every multi-key script or transaction needs, its keys in one slot.

Redis Cluster refuses a script or MULTI whose keys map to more than one slot (CROSSSLOT). A
key's slot is the CRC16 of its hash tag, the part between its first `{` and `}` (of the whole
key when there is none). So:

- keys of one thing (a user's push state, a lease and its fence, a call's hash and ice list)
  share a tag naming that thing;
- what used to be one global set beside per-user keys (presence's online users) is split into
  `Settings.redis_buckets` buckets, bucket = CRC32(user) % buckets, tag `{<family><bucket>}`;
  a user's keys carry their bucket's tag, and whoever wants "all of them" reads every bucket.

On a single Redis the same keys work unchanged (tags are only characters there).
"""
import zlib
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

# Every client a Parley process holds: one Redis, or a cluster of them (shared/stores.py).
RedisClient = aioredis.Redis | RedisCluster

DEFAULT_BUCKETS = 16

# What a Redis call may raise when Redis is away or failing: a cluster client's "no node
# reachable" or "no node serves this slot" (RedisClusterException) is not a RedisError; a
# refused or timed-out socket is an OSError (TimeoutError is one).
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


def bucket_of(value: str, buckets: int) -> int:
    """The bucket of a user, a call, a rate-limit key: stable across processes and restarts."""
    return zlib.crc32(value.encode()) % buckets


def tag(family: str, bucket: int) -> str:
    """The hash tag of one bucket of a key family, e.g. `{p3}`."""
    return f"{{{family}{bucket}}}"


def is_cluster(redis: RedisClient) -> bool:
    return isinstance(redis, RedisCluster)


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


async def due_in_buckets(redis: RedisClient, keys: Iterable[str], until: float, limit: int) -> list[str]:
    """The members scored up to `until` in a family's per-bucket sorted sets (one key per bucket,
    each read in its own slot, all in one pipeline), at most `limit` of them."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zrangebyscore(key, "-inf", until, start=0, num=limit)
        found = await pipe.execute()
    return [str(member) for members in found for member in members][:limit]
