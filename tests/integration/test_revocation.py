"""A logged-out token stays refused when Redis loses its data (issue 11, point 4).

Revocations live in auth's MongoDB; Redis only caches them. Here every Redis key of the run's
namespace is deleted right after a logout (what a Redis restarted empty looks like to Parley):
the token is still refused on `auth.resume`, a socket still bound with it is still closed by
the gateway's heartbeat (4401), other tokens keep working, and auth rebuilds the cache.
"""
import asyncio

import redis.asyncio as aioredis

from shared.settings import Settings
from tests.support.client import Client, log_in_again, new_user
from tests.support.waiting import eventually

CLOSE_SESSION_ENDED = 4401


async def lose_redis(settings: Settings) -> int:
    """Delete every key of this run's namespace (never anyone else's, never FLUSHALL)."""
    redis = aioredis.Redis.from_url(settings.redis_url)
    deleted = 0
    try:
        async for key in redis.scan_iter(f"{settings.namespace}:*", count=1000):
            deleted += await redis.delete(key)
    finally:
        await redis.aclose()
    return deleted


async def resume(port: int, token: str) -> dict:
    client = await Client(port).connect()
    try:
        return await client.reply("auth.resume", {"token": token})
    finally:
        await client.close()


async def test_a_revoked_token_stays_refused_after_redis_loses_its_data(settings: Settings, port: int, other_port: int):
    alice = await new_user(port, "phone")
    laptop = await log_in_again(alice, other_port, "laptop")  # another device, its own token
    await laptop.wait_synced()
    revoked_token = alice.token
    assert revoked_token is not None
    # A socket on the other gateway, bound with the token about to be revoked.
    bound = await Client(other_port).connect()
    assert (await bound.call("auth.resume", {"token": revoked_token}))["user_id"] == alice.user_id

    await alice.call("auth.logout")
    assert await lose_redis(settings) > 0

    refused = await resume(port, revoked_token)
    assert not refused["ok"] and refused["error"]["code"] == "unauthorized", refused
    assert "revoked" in refused["error"]["message"]
    refused = await resume(other_port, revoked_token)
    assert not refused["ok"] and refused["error"]["code"] == "unauthorized", refused

    # The heartbeat (every presence_ttl/3 = 1 s here) still ends the session bound with it.
    await asyncio.wait_for(bound.closed.wait(), timeout=10)
    assert bound.ws is not None and bound.ws.close_code == CLOSE_SESSION_ENDED

    # Tokens nobody revoked keep working, and the laptop's socket stays open.
    assert (await resume(port, laptop.token))["ok"]
    assert (await laptop.call("ping")) == {}

    # auth rebuilds the cache (within about a second); the token is still refused from it.
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        async def rebuilt() -> bool:
            marker = await redis.get(f"{settings.namespace}:revocations:cache")
            return bool(marker and marker.startswith("complete:"))

        await eventually(rebuilt, "the revocation cache rebuilt (its marker `complete:...`)")
    finally:
        await redis.aclose()
    refused = await resume(port, revoked_token)
    assert not refused["ok"] and refused["error"]["code"] == "unauthorized", refused

    # Logging in again gives a fresh token that works.
    again = await log_in_again(alice, port, "phone")
    assert again.token != revoked_token
    assert (await resume(other_port, again.token))["ok"]
    # Logged out, alice's first socket is still open (unbound): it is closed like the others.
    for client in (alice, laptop, again):
        await client.close()
