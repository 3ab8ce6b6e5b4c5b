"""shared/ratelimit.py on real Redis: a token bucket per key, refilled by Redis server time."""
import asyncio

import pytest

from shared.ratelimit import CoalescedTakes, TokenBucket
from tests.unit.helpers import redis_namespace

RATE, BURST = 10.0, 3  # a token every 0.1 s, at most 3 saved up


@pytest.fixture
async def redis_and_namespace(settings):
    async with redis_namespace(settings) as pair:  # a prefix of this test alone; keys deleted after
        yield pair


@pytest.fixture
def bucket(redis_and_namespace):
    redis, namespace = redis_and_namespace
    return TokenBucket(redis, namespace, "send", RATE, BURST)


async def takes(bucket: TokenBucket, key: str, n: int) -> list[bool]:
    return [await bucket.take(key) for _ in range(n)]


async def test_a_full_bucket_gives_its_burst_then_refuses(bucket):
    assert await takes(bucket, "u_alice", BURST) == [True] * BURST
    assert await takes(bucket, "u_alice", 2) == [False, False]


async def test_it_refills_with_time_at_the_rate(bucket):
    await takes(bucket, "u_alice", BURST)
    assert await bucket.take("u_alice") is False
    await asyncio.sleep(0.25)  # 2.5 tokens at 10 a second
    assert await takes(bucket, "u_alice", 3) == [True, True, False]


async def test_it_never_refills_past_the_burst(bucket):
    await bucket.take("u_alice")
    await asyncio.sleep(0.5)  # 5 tokens' worth of time, but it holds 3
    assert await takes(bucket, "u_alice", BURST + 1) == [True] * BURST + [False]


async def test_refusals_do_not_consume_anything(bucket):
    await takes(bucket, "u_alice", BURST)
    assert await takes(bucket, "u_alice", 5) == [False] * 5  # knocking on an empty bucket
    await asyncio.sleep(0.15)
    assert await bucket.take("u_alice") is True


async def test_keys_are_independent(bucket):
    assert await takes(bucket, "u_alice", BURST + 1) == [True] * BURST + [False]
    assert await takes(bucket, "u_bob", BURST) == [True] * BURST


async def test_buckets_of_other_names_are_independent(bucket, redis_and_namespace):
    redis, namespace = redis_and_namespace
    other = TokenBucket(redis, namespace, "upload", RATE, BURST)
    await takes(bucket, "u_alice", BURST)
    assert await other.take("u_alice") is True


async def test_concurrent_takes_never_hand_out_more_than_the_burst(redis_and_namespace):
    redis, namespace = redis_and_namespace
    slow = TokenBucket(redis, namespace, "send", 0.01, 10)  # practically no refill
    results = await asyncio.gather(*(slow.take("u_alice") for _ in range(40)))
    assert results.count(True) == 10


async def test_the_key_is_a_hash_that_expires_once_it_would_be_full_again(bucket, redis_and_namespace):
    redis, namespace = redis_and_namespace
    await bucket.take("u_alice")
    key = f"{namespace}:ratelimit:send:u_alice"
    assert await redis.type(key) == "hash"
    assert set(await redis.hkeys(key)) == {"tokens", "ts"}
    ttl_ms = await redis.pttl(key)
    # burst / rate + 1 = 1.3 s
    assert 1000 < ttl_ms <= 1300


async def test_an_expired_key_is_a_full_bucket(redis_and_namespace):
    redis, namespace = redis_and_namespace
    quick = TokenBucket(redis, namespace, "send", 100.0, 2)  # expires 1.02 s after its last take
    assert await takes(quick, "u_alice", 3) == [True, True, False]
    key = quick.key("u_alice")
    for _ in range(30):
        if not await redis.exists(key):
            break
        await asyncio.sleep(0.1)
    assert not await redis.exists(key)
    assert await takes(quick, "u_alice", 3) == [True, True, False]


def test_nonsense_limits_are_refused(settings):
    with pytest.raises(ValueError):
        TokenBucket(None, settings.namespace, "send", 0, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenBucket(None, settings.namespace, "send", 10, 0)  # type: ignore[arg-type]


async def test_many_takes_in_one_call_count_each_and_keep_keys_apart(bucket):
    taken = await bucket.take_many(["u_alice"] * (BURST + 1) + ["u_bob"])
    assert taken == [True] * BURST + [False, True]
    assert await bucket.take("u_bob") is True and await bucket.take("u_alice") is False


async def test_takes_in_one_turn_of_the_loop_go_to_redis_together_with_the_same_answers(bucket):
    calls: list[list[str]] = []
    take_many = bucket.take_many

    async def counted(keys: list[str]) -> list[bool]:
        calls.append(keys)
        return await take_many(keys)

    bucket.take_many = counted
    coalesced = CoalescedTakes(bucket)
    answers = await asyncio.gather(*(coalesced.take(k) for k in ["u_alice"] * (BURST + 1) + ["u_bob"]))
    assert answers == [True] * BURST + [False, True]
    assert calls == [["u_alice"] * (BURST + 1) + ["u_bob"]]  # one script call for all five
