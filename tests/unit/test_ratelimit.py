"""shared/ratelimit.py on real Redis: a token bucket per key, refilled by Redis server time.

The refill runs on Redis's clock, which a test cannot stop: "the fourth take is refused" only
holds if the takes come within a tenth of a second of each other, a bet on a loaded machine.
So tests not about refilling use a bucket that practically never refills (`still`), and those
about refilling bound what they see by the time the client measured around its calls (the
server's clock moved at most that much between them): on a quick machine the bounds are the
exact counts, on a slow one they allow what the elapsed time refilled.
"""
import asyncio
import time

import pytest

from shared.ratelimit import CoalescedTakes, TokenBucket
from tests.support.waiting import eventually
from tests.unit.helpers import redis_namespace


RATE, BURST = 10.0, 3  # a token every 0.1 s, at most 3 saved up
STILL = 1 / 3600  # a token an hour: no refill within a test


@pytest.fixture
async def redis_and_namespace(redis_settings):
    async with redis_namespace(redis_settings) as pair:  # a prefix of this test alone; keys deleted after
        yield pair


@pytest.fixture
def bucket(redis_and_namespace):
    redis, namespace = redis_and_namespace
    return TokenBucket(redis, namespace, "send", RATE, BURST)


@pytest.fixture
def still(redis_and_namespace):
    redis, namespace = redis_and_namespace
    return TokenBucket(redis, namespace, "send", STILL, BURST)


async def takes(bucket: TokenBucket, key: str, n: int) -> list[bool]:
    return [await bucket.take(key) for _ in range(n)]


async def drain(bucket: TokenBucket, key: str) -> int:
    """Take until a take is refused; how many were given."""
    given = 0
    while await bucket.take(key):
        given += 1
        assert given < 1000, "the bucket never ran dry"
    return given


async def test_a_full_bucket_gives_its_burst_then_refuses(still):
    assert await takes(still, "u_alice", BURST) == [True] * BURST
    assert await takes(still, "u_alice", 2) == [False, False]


async def test_it_refills_with_time_at_the_rate(bucket):
    start = time.monotonic()
    first = await drain(bucket, "u_alice")  # the burst, and what refilled meanwhile (quick: nothing)
    emptied = time.monotonic()
    await asyncio.sleep(0.25)  # 2.5 tokens at 10 a second
    slept = time.monotonic()
    then = await drain(bucket, "u_alice")
    done = time.monotonic()
    # Quick, 3 then 2: at least what the sleep refilled (a whole token each), at most what
    # everything since the first take refilled, beyond the burst.
    assert first >= BURST
    assert then >= min(BURST, int(RATE * (slept - emptied)))
    assert first + then <= BURST + RATE * (done - start)


async def test_it_never_refills_past_the_burst(bucket):
    await bucket.take("u_alice")
    await asyncio.sleep(0.5)  # 5 tokens' worth of time, but it holds 3
    slept = time.monotonic()
    given = await drain(bucket, "u_alice")
    # Quick, exactly the burst: at most the burst and what refilled while it was taken.
    assert BURST <= given <= BURST + RATE * (time.monotonic() - slept)


async def test_refusals_do_not_consume_anything(bucket):
    start = time.monotonic()
    given = await drain(bucket, "u_alice")
    knocks = await takes(bucket, "u_alice", 5)  # knocking on an empty bucket
    knocked = time.monotonic()
    # Quick, all five refused: only what refilled meanwhile can be given.
    assert given + knocks.count(True) <= BURST + RATE * (knocked - start)
    await asyncio.sleep(0.15)  # 1.5 tokens: had the refusals cost one each, the bucket would owe
    assert await bucket.take("u_alice") is True


async def test_keys_are_independent(still):
    assert await takes(still, "u_alice", BURST + 1) == [True] * BURST + [False]
    assert await takes(still, "u_bob", BURST) == [True] * BURST


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
    start = time.monotonic()
    await bucket.take("u_alice")
    key = bucket.key("u_alice")
    assert await redis.type(key) == "hash"
    assert set(await redis.hkeys(key)) == {"tokens", "ts"}
    ttl_ms = await redis.pttl(key)
    since_ms = (time.monotonic() - start) * 1000
    # burst / rate + 1 = 1.3 s, less the time since the take (a millisecond, quick)
    assert 1300 - since_ms - 1 <= ttl_ms <= 1300


async def test_an_expired_key_is_a_full_bucket(redis_and_namespace):
    redis, namespace = redis_and_namespace
    quick = TokenBucket(redis, namespace, "send", RATE, 2)  # expires 1.2 s after its last take
    key = quick.key("u_alice")

    async def full() -> None:
        start = time.monotonic()
        given = await drain(quick, "u_alice")
        assert 2 <= given <= 2 + RATE * (time.monotonic() - start)  # quick, exactly 2

    async def gone() -> bool:
        return not await redis.exists(key)

    await full()
    await eventually(gone, "the bucket's key expired")
    await full()


def test_nonsense_limits_are_refused(redis_settings):
    with pytest.raises(ValueError):
        TokenBucket(None, redis_settings.namespace, "send", 0, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenBucket(None, redis_settings.namespace, "send", 10, 0)  # type: ignore[arg-type]


async def test_many_takes_in_one_call_count_each_and_keep_keys_apart(still):
    taken = await still.take_many(["u_alice"] * (BURST + 1) + ["u_bob"])
    assert taken == [True] * BURST + [False, True]
    assert await still.take("u_bob") is True and await still.take("u_alice") is False


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


async def test_a_redis_call_past_its_timeout_fails_every_taker_of_that_turn(bucket):
    async def stuck(keys: list[str]) -> list[bool]:
        await asyncio.sleep(60)
        return [True] * len(keys)

    bucket.take_many = stuck
    coalesced = CoalescedTakes(bucket, timeout=0.05)
    answers = await asyncio.gather(*(coalesced.take(k) for k in ["u_alice", "u_bob"]), return_exceptions=True)
    assert [type(a) for a in answers] == [TimeoutError, TimeoutError]
