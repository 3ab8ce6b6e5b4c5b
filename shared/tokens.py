"""Session tokens: signed, expiring JWTs that the gateway verifies without asking auth, and the
revocations of logged-out tokens.

Revocations are owned by auth and kept durably in MongoDB (its `revocations` collection, each
expiring with its token: services/auth/storage/revocations.py). Redis holds a cache of them that
the gateway reads on every `auth.resume` and heartbeat, one key per token id
(`<ns>:revoked:<token_id>`, so the keys spread over a Redis Cluster), beside one marker key
(`<ns>:revocations:cache`) saying whether the cache is complete:

- `complete:<redis run_id>:<generation>`: every revocation in MongoDB is in Redis;
- `building:<generation>` (with a short expiry, refreshed as it goes): a rebuild is under way;
- absent: Redis lost its data (restarted empty, flushed, failed over) and nobody rebuilt it yet.

auth writes MongoDB first, then the token's key (services/auth/domain/revocations.py); every
second each auth replica looks at the marker and, when it is absent or names another Redis
run_id (a Redis restarted from an older snapshot), rebuilds the cache from MongoDB and then
sets `complete:` (only if its own `building:` marker is still there, so a flush in the middle
of a rebuild is not marked complete).

On a Redis Cluster the key names are the same (each key is one slot; the marker's one script
touches the marker alone), and "this Redis's run id" is a digest of every primary's run id: a
failover (a replica promoted, whose copy may miss the last writes before its primary died) or
any node restarted changes it, and auth rebuilds the cache from MongoDB within a second. The
keys are read in three steps there (marker, keys, marker), the keys spread over several nodes.
Key names are unchanged from single Redis, so no revocation is forgotten across an upgrade.

The gateway (`RevocationCheck`) trusts an absent key only when the marker read just before and
just after the keys is the same `complete:` value (a flush and rebuild in between would change
the generation). Otherwise, or when Redis does not answer, it asks auth (`auth.tokens.revoked`,
answered from MongoDB); when auth does not answer either, it refuses (`unavailable`): a token is
never accepted unchecked.
"""
import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import jwt
from redis.asyncio.cluster import RedisCluster

from shared.contracts import auth
from shared.contracts.errors import ParleyError
from shared.ids import new_id
from shared.redis_slots import REDIS_ERRORS, RedisClient, is_cluster

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    device_id: str
    token_id: str
    expires_at: int  # unix seconds


class TokenCodec:
    def __init__(self, secret: str, ttl_seconds: int):
        self.secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, device_id: str) -> tuple[str, TokenClaims]:
        now = int(time.time())
        claims = TokenClaims(user_id, device_id, new_id("t"), now + self.ttl_seconds)
        token = jwt.encode(
            {"sub": user_id, "dev": device_id, "jti": claims.token_id, "iat": now, "exp": claims.expires_at},
            self.secret,
            algorithm=ALGORITHM,
        )
        return token, claims

    def verify(self, token: str) -> TokenClaims:
        """Signature and expiry only; revocation is `RevocationCheck.is_revoked`."""
        try:
            payload = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], options={"require": ["sub", "dev", "jti", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise ParleyError.unauthorized("token expired; log in again") from None
        except jwt.InvalidTokenError:
            raise ParleyError.unauthorized("invalid token") from None
        return TokenClaims(payload["sub"], payload["dev"], payload["jti"], int(payload["exp"]))


COMPLETE = "complete:"
BUILDING = "building:"
# How long a `building:` marker outlives the last sign of life of the replica rebuilding.
BUILDING_TTL_SECONDS = 30
# How long the gateway waits on Redis before asking auth instead.
CACHE_TIMEOUT_SECONDS = 1.0
# Token ids per `auth.tokens.revoked` call (the contract's bound).
ASK_BATCH = 1000

# Sets the marker to `complete:` only if it still holds this rebuild's `building:` value.
_FINISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Revocations:
    """The Redis cache of revoked token ids, each key kept until its token would have expired."""

    def __init__(self, redis: RedisClient, namespace: str):
        self.redis = redis
        self.prefix = f"{namespace}:revoked:"
        self.marker_key = f"{namespace}:revocations:cache"
        self._finish = redis.register_script(_FINISH)

    async def revoke(self, token_id: str, expires_at: int) -> None:
        await self.revoke_many([(token_id, expires_at)])

    async def revoke_many(self, revoked: Iterable[tuple[str, int]]) -> None:
        now = int(time.time())
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_id, expires_at in revoked:
                pipe.set(self.prefix + token_id, "1", ex=max(1, expires_at - now))
            await pipe.execute()

    async def cached_among(self, token_ids: list[str]) -> set[str] | None:
        """The revoked among `token_ids`, or None when the cache is not known to be complete."""
        if is_cluster(self.redis):
            return await self._cached_among_on_cluster(token_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.marker_key)
            for token_id in token_ids:
                pipe.exists(self.prefix + token_id)
            pipe.get(self.marker_key)
            found = await pipe.execute()
        before, hits, after = found[0], found[1:-1], found[-1]
        if before is None or before != after or not str(before).startswith(COMPLETE):
            return None
        return {t for t, hit in zip(token_ids, hits, strict=True) if hit}

    async def _cached_among_on_cluster(self, token_ids: list[str]) -> set[str] | None:
        # A cluster pipeline sends each node its commands at once, in no order between nodes: the
        # marker is read before the keys, and again after them, each a step of its own.
        before = await self.redis.get(self.marker_key)
        if before is None or not str(before).startswith(COMPLETE):
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_id in token_ids:
                pipe.exists(self.prefix + token_id)
            hits = await pipe.execute()
        if await self.redis.get(self.marker_key) != before:
            return None
        return {t for t, hit in zip(token_ids, hits, strict=True) if hit}

    # --- the marker (auth's side) ----------------------------------------------------------------
    async def marker(self) -> str | None:
        value = await self.redis.get(self.marker_key)
        return None if value is None else str(value)

    async def run_id(self) -> str:
        """This Redis server's run id: a new one after every restart. On a cluster, a digest of
        its primaries' run ids: a new one after any restart or failover."""
        if is_cluster(self.redis):
            found = await self.redis.info("server", target_nodes=RedisCluster.PRIMARIES)
            ids = sorted(str(info["run_id"]) for info in found.values())
            return hashlib.sha256(",".join(ids).encode()).hexdigest()[:40]
        return str((await self.redis.info("server"))["run_id"])

    async def begin_rebuild(self) -> str:
        """Claim the rebuild; returns the `building:` value to hand to `finish_rebuild`."""
        building = BUILDING + new_id("g")
        await self.redis.set(self.marker_key, building, ex=BUILDING_TTL_SECONDS)
        return building

    async def still_building(self, building: str) -> None:
        """Keep a long rebuild's claim alive."""
        await self.redis.expire(self.marker_key, BUILDING_TTL_SECONDS)

    async def finish_rebuild(self, building: str, run_id: str) -> bool:
        """Mark the cache complete, unless Redis lost the claim meanwhile (then: rebuild again)."""
        complete = f"{COMPLETE}{run_id}:{building.removeprefix(BUILDING)}"
        return int(await self._finish(keys=[self.marker_key], args=[building, complete])) == 1

    async def mark_incomplete(self) -> None:
        await self.redis.delete(self.marker_key)


def marker_run_id(marker: str | None) -> str | None:
    """The Redis run id a `complete:` marker was written for."""
    if marker is None or not marker.startswith(COMPLETE):
        return None
    return marker.removeprefix(COMPLETE).split(":", 1)[0]


AskAuth = Callable[[list[str]], Awaitable[auth.TokensRevokedReply]]


class RevocationCheck:
    """The gateway's question "which of these tokens were revoked?": Redis when its cache is
    complete, else auth (from MongoDB), else `unavailable`. Never "none" by default."""

    def __init__(self, cache: Revocations, ask: AskAuth):
        self.cache = cache
        self.ask = ask  # `auth.tokens.revoked` over RPC

    async def revoked_among(self, token_ids: list[str]) -> set[str]:
        if not token_ids:
            return set()
        try:
            async with asyncio.timeout(CACHE_TIMEOUT_SECONDS):
                cached = await self.cache.cached_among(token_ids)
            if cached is not None:
                return cached
        except REDIS_ERRORS:
            pass  # Redis away: auth answers instead
        revoked: set[str] = set()
        try:
            for i in range(0, len(token_ids), ASK_BATCH):
                revoked.update((await self.ask(token_ids[i : i + ASK_BATCH])).revoked)
        except Exception as exc:  # auth away, slow, or the broker down: refuse, never accept unchecked
            raise ParleyError.unavailable("cannot check the token right now; retry") from exc
        return revoked

    async def is_revoked(self, token_id: str) -> bool:
        return token_id in await self.revoked_among([token_id])
