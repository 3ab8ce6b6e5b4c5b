"""What Redis Cluster asks of the stores' keys, on a real six-node cluster (tests/conftest.py
`redis_cluster`): a script or transaction over keys of two slots is refused (CROSSSLOT), so
presence, rate limits and calls keep each one's keys under one hash tag, and what was one global
set is read back from every bucket. (Each store's own tests run on the cluster too, through the
`redis_settings` fixture.)"""
import asyncio
import time

import pytest
from redis.exceptions import RedisClusterException, ResponseError

from services.calls.domain.ports import Call
from services.calls.storage.call_store import RedisCallStore
from shared.presence import _LEAVE, DeviceSocket, Presence
from shared.ratelimit import CoalescedTakes, TokenBucket
from shared.redis_slots import slot_of
from tests.unit.helpers import redis_namespace


@pytest.fixture
def cluster_settings(settings, redis_cluster):
    return settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True})


async def test_a_script_over_keys_of_two_slots_is_refused_so_presence_keeps_a_user_in_one_bucket(cluster_settings):
    """The leave script as it was before the hash tags (a user's set beside global keys) is
    refused by the cluster; with Presence's keys (one bucket's tag) it runs."""
    async with redis_namespace(cluster_settings) as (redis, namespace):
        old = [f"{namespace}:presence:user:u_alice", f"{namespace}:presence:expiry",
               f"{namespace}:presence:online", f"{namespace}:presence:last_seen"]
        assert len({slot_of(k) for k in old}) > 1
        with pytest.raises((ResponseError, RedisClusterException), match="(?i)slot"):
            await redis.eval(_LEAVE, len(old), *old, "m", "u_alice|m", time.time(), "u_alice", "now")

        presence = Presence(redis, namespace, ttl_seconds=60)
        sock = DeviceSocket("u_alice", "phone", "gw1", "c1")
        assert await presence.bind(sock) is True
        assert await presence.unbind(sock) is not None  # the leave script, on one slot


async def test_presence_of_users_in_every_bucket_is_read_and_swept_from_every_bucket(cluster_settings):
    async with redis_namespace(cluster_settings) as (redis, namespace):
        presence = Presence(redis, namespace, ttl_seconds=60, buckets=8)
        users = [f"u_{i}" for i in range(40)]
        assert len({presence._bucket(u) for u in users}) == 8
        for user in users:
            await presence.bind(DeviceSocket(user, "phone", "gw1", f"c_{user}"))
        status = await presence.status_of([*users, "u_nobody"])
        assert [u for u, (online, _) in status.items() if online] == users
        brief = Presence(redis, namespace, ttl_seconds=0.05, buckets=8)
        for user in users:  # pushed to expire now
            await brief.refresh([DeviceSocket(user, "phone", "gw1", f"c_{user}")])
        await asyncio.sleep(0.1)
        gone = await presence.sweep(limit=1000)
        assert sorted(u for u, _ in gone) == sorted(users)
        assert not any(online for online, _ in (await presence.status_of(users)).values())


async def test_takes_of_many_users_in_one_turn_are_one_script_call_per_bucket(cluster_settings):
    """Coalesced takes of users of every bucket: each answered as alone (no CROSSSLOT)."""
    async with redis_namespace(cluster_settings) as (redis, namespace):
        bucket = TokenBucket(redis, namespace, "send", 0.001, 2, buckets=16)
        takes = CoalescedTakes(bucket)
        users = [f"u_{i}" for i in range(50)]
        answers = await asyncio.gather(*(takes.take(u) for u in users * 3))
        # Each user: two tokens, then refused.
        assert answers == [True] * 100 + [False] * 50


async def test_a_busy_key_left_by_a_dead_replica_does_not_keep_a_user_busy(cluster_settings):
    """end removes the call, then frees its users: a replica that died between the two left a
    busy key naming a call that no longer exists, and the next call takes it over."""
    async with redis_namespace(cluster_settings) as (redis, namespace):
        calls = RedisCallStore(redis, namespace)
        now = time.time()
        first = Call("call_1", "cv", "u_a", "da", "u_b", "audio", "ringing", now, now + 30, None, None)
        assert await calls.begin(first) == "ok"
        assert await calls.begin(Call("call_2", "cv", "u_c", "dc", "u_b", "audio", "ringing", now, now + 30,
                                      None, None)) == "busy"
        await calls._end(keys=calls._end_keys("call_1"), args=["call_1", 60, 0, 1])  # ended, users not freed
        assert await calls.begin(Call("call_3", "cv", "u_b", "db", "u_a", "audio", "ringing", now, now + 30,
                                      None, None)) == "ok"
        assert [c.call_id for c in await calls.live()] == ["call_3"]


async def test_more_concurrent_calls_to_one_node_than_the_cluster_clients_default_pool_all_wait_their_turn(
    cluster_settings,
):
    """The cluster client fails a call at once past 100 connections to a node by default
    (MaxConnectionsError: 300 concurrent logins failed open); Parley's, like one Redis's, waits."""
    async with redis_namespace(cluster_settings) as (redis, namespace):
        answers = await asyncio.gather(*(redis.blpop(f"{namespace}:{{q}}:nothing", 0.2) for _ in range(150)),
                                       return_exceptions=True)
        assert answers == [None] * 150
