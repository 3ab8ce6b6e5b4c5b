"""services/auth/domain/revocations.py: logout is durable in MongoDB, and the Redis cache is
rebuilt from it when Redis loses its data, on a real MongoDB-wire server and real Redis."""
import time
from datetime import datetime, timezone

import pytest

from services.auth.domain import revocations
from services.auth.domain.revocations import CacheKeeper
from services.auth.storage.revocation_cache import RedisRevocationCache
from services.auth.storage.revocations import MongoRevocationStore
from shared.contracts.auth import TokensRevoked
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.wire import Caller
from shared.stores import redis_client
from shared.tokens import RevocationCheck
from tests.unit.helpers import redis_namespace



def caller(token_id: str, expires_in: int = 3600) -> Caller:
    return Caller(request_id="r1", user_id="u_alice", token_id=token_id, token_expires_at=int(time.time()) + expires_in)


@pytest.fixture
async def world(db, redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        store = MongoRevocationStore(db)
        await store.ensure_indexes()
        cache = RedisRevocationCache(redis, namespace)
        yield store, cache, CacheKeeper(store, cache), redis, namespace


async def lose_redis(redis, namespace) -> None:
    async for key in redis.scan_iter(f"{namespace}:*"):
        await redis.delete(key)


async def test_logout_is_written_to_mongodb_and_to_the_cache(world, db):
    store, cache, keeper, redis, namespace = world
    await keeper.check()  # first start: the (empty) cache is built and marked complete
    await revocations.logout(caller("t_out"), store, cache, keeper)
    doc = await db["revocations"].find_one({"_id": "t_out"})
    assert doc["user_id"] == "u_alice" and doc["expires_at"].timestamp() > time.time() + 3500
    assert await cache.cached_among(["t_out", "t_in"]) == {"t_out"}
    await revocations.logout(caller("t_out"), store, cache, keeper)  # again: still one
    assert await db["revocations"].count_documents({}) == 1


async def test_logout_without_a_token_is_unauthorized(world):
    store, cache, keeper, *_ = world
    with pytest.raises(ParleyError) as info:
        await revocations.logout(Caller(request_id="r"), store, cache, keeper)
    assert info.value.code == ErrorCode.UNAUTHORIZED


async def test_a_cache_that_lost_its_data_is_rebuilt_from_mongodb(world):
    store, cache, keeper, redis, namespace = world
    await keeper.check()
    for token_id in ("t_a", "t_b"):
        await revocations.logout(caller(token_id), store, cache, keeper)
    await store.add("t_expired", "u_alice", datetime.fromtimestamp(time.time() - 5, timezone.utc))
    assert not await keeper.check()  # complete: nothing to do

    await lose_redis(redis, namespace)
    assert await cache.cached_among(["t_a"]) is None  # incomplete: the gateway must ask auth
    assert (await revocations.revoked_among(TokensRevoked(token_ids=["t_a", "t_x", "t_expired"]), store)).revoked == ["t_a"]

    assert await keeper.check()
    assert await cache.cached_among(["t_a", "t_b", "t_x", "t_expired"]) == {"t_a", "t_b"}
    assert 3500 < await redis.ttl(f"{namespace}:revoked:t_a") <= 3600


async def test_a_redis_restarted_from_an_old_snapshot_is_rebuilt(world):
    store, cache, keeper, redis, namespace = world
    await keeper.check()
    await redis.set(cache.marker_key, "complete:an-earlier-redis-run:g_1")  # the snapshot's marker
    await store.add("t_late", "u_alice", datetime.fromtimestamp(time.time() + 60, timezone.utc))
    assert await keeper.check()
    assert await cache.cached_among(["t_late"]) == {"t_late"}


async def test_a_rebuild_under_way_elsewhere_is_left_to_finish(world):
    store, cache, keeper, redis, namespace = world
    await cache.begin_rebuild()  # another replica
    assert not await keeper.check()


async def test_a_logout_that_cannot_reach_redis_is_durable_and_the_gateway_still_refuses(world, redis_settings):
    store, cache, keeper, redis, namespace = world
    await keeper.check()
    dead = redis_client(redis_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        await revocations.logout(caller("t_out"), store, RedisRevocationCache(dead, namespace), keeper)
    finally:
        await dead.aclose()
    assert keeper.missed  # the cache may not claim to be complete without it
    await keeper.check()  # Redis answers again: marked incomplete, rebuilt
    assert await cache.cached_among(["t_out"]) == {"t_out"}


async def test_the_gateways_check_never_misses_a_revocation_whatever_redis_lost(world):
    store, cache, keeper, redis, namespace = world
    await keeper.check()
    await revocations.logout(caller("t_out"), store, cache, keeper)

    async def ask(token_ids):
        return await revocations.revoked_among(TokensRevoked(token_ids=token_ids), store)

    check = RevocationCheck(cache, ask)
    assert await check.is_revoked("t_out")
    await lose_redis(redis, namespace)
    assert await check.is_revoked("t_out")  # asked auth
    await keeper.check()
    assert await check.is_revoked("t_out")  # from the rebuilt cache
