"""Chat's partition queues on three real replicas (issue 26; shared/partition_consumers.py): each
partition consumed by exactly one replica once settled; a replica killed -9 under load has its
partitions taken over within the bound, nothing lost, stored twice or out of seq; a replica
started again gets its share back; Redis killed, every replica consumes every partition (fail
open) and sends go on; Redis back, one replica per partition again.

One stack of its own (tests/support/chaos.py's ChaosStack: its own Redis, which it may kill), one
gateway, three chat replicas, leases of LEASE seconds; the load is the fault suite's (clients
that retry with the same client_msg_id, reconnect, sync and ack).
"""
import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import aio_pika
import pytest
import redis.asyncio as aioredis

from shared.broker import Names
from tests.support import leaks
from tests.support.chaos import BOUNDS, ChaosStack, Episode, LoadConfig, Report, run_scenario
from tests.support.infra import LOG_DIR

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

PARTITIONS = 16
LEASE = 2.0  # seconds: a dead replica's partitions are taken over within LEASE * 4/3
TAKEOVER_BOUND = LEASE * 4 / 3 + 2.0  # and 2 s for a loaded 2-core box (process scheduling, the load)
CHATS = 3
CONFIG = LoadConfig(pairs=6, group_size=4, rate=30.0, retry_budget=30.0)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[ChaosStack]:
    env = {"PARLEY_CHAT_PARTITIONS": str(PARTITIONS), "PARLEY_CHAT_PARTITION_LEASE_SECONDS": str(LEASE)}
    own = ChaosStack(LOG_DIR / "partitions.log", gateways=1, chats=CHATS, extra_env=env)
    leaks.keep(own)
    try:
        await asyncio.to_thread(own.start)
        yield own
    finally:
        await own.astop()
        leaks.release(own)


async def consumers(stack: ChaosStack) -> list[int]:
    """How many consumers each partition queue has, from RabbitMQ (a passive declare)."""
    names = Names(stack.namespace)
    connection = await aio_pika.connect(stack.env["PARLEY_AMQP_URL"])
    try:
        counts = []
        for partition in range(PARTITIONS):
            channel = await connection.channel()
            queue = await channel.declare_queue(names.partition_queue("chat", partition), passive=True)
            result = queue.declaration_result
            counts.append(int(result.consumer_count))
            await channel.close()
        return counts
    finally:
        await connection.close()


async def lease_holders(stack: ChaosStack) -> list[str | None]:
    """The replica holding each partition's lease in Redis (None: nobody)."""
    client = aioredis.Redis.from_url(stack.env["PARLEY_REDIS_URL"], decode_responses=True)
    try:
        values = [await client.get(f"{stack.namespace}:lease:{{chat.partition.{p}}}") for p in range(PARTITIONS)]
    finally:
        await client.aclose()
    return [v.split("|")[0] if v else None for v in values]


async def settled(stack: ChaosStack, replicas: int, timeout: float) -> float:
    """Seconds until every partition has one consumer and one lease, spread over `replicas`
    replicas holding a fair share each."""
    started = time.monotonic()
    share = -(-PARTITIONS // replicas)  # the larger share (shared/partition_consumers.fair_share)
    last: tuple[list[int], Counter[str | None]] = ([], Counter())
    while time.monotonic() - started < timeout:
        counts, holders = await consumers(stack), Counter(await lease_holders(stack))
        last = (counts, holders)
        if counts == [1] * PARTITIONS and None not in holders and len(holders) == replicas \
                and max(holders.values()) <= share:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not settled on {replicas} replicas in {timeout} s: consumers {last[0]}, leases {last[1]}")


def passed(report: Report, bounds: dict[str, float]) -> None:
    problems = report.problems(bounds)
    assert not problems, f"{report.name}: " + "\n  ".join(["", *problems])


async def test_each_partition_is_consumed_by_exactly_one_replica_once_settled(stack: ChaosStack) -> None:
    took = await settled(stack, CHATS, timeout=20)
    print(f"\n[partitions] settled on {CHATS} replicas ({took:.1f} s after ready)")
    await asyncio.sleep(2 * LEASE)  # and it stays so: renewals, not a moment's luck
    assert await consumers(stack) == [1] * PARTITIONS


async def test_a_replica_killed_under_load_has_its_partitions_taken_over_and_nothing_lost(stack: ChaosStack) -> None:
    await settled(stack, CHATS, timeout=20)
    timing: dict[str, float] = {}

    async def kill_chat3(s: ChaosStack) -> list[Episode]:
        s.kill("chat", CHATS - 1)
        t_fault = time.perf_counter()
        timing["takeover"] = await settled(s, CHATS - 1, timeout=30)
        return [Episode("chat3 kill -9 (not restarted)", t_fault, time.perf_counter(), "fault")]

    report = await run_scenario(stack, "chat3 kill -9", kill_chat3, CONFIG, warmup=4.0, after=6.0, settle=10.0)
    print(f"\n[partitions] chat3's partitions taken over by the other two in {timing['takeover']:.1f} s")
    passed(report, BOUNDS["chat"])
    assert timing["takeover"] <= TAKEOVER_BOUND, timing

    stack.restart("chat", CHATS - 1)  # a new replica gets its share: the others give some up
    rejoined = await settled(stack, CHATS, timeout=60)
    print(f"[partitions] chat3 started again: {CHATS} replicas share the partitions {rejoined:.1f} s later")


async def test_with_redis_away_every_replica_consumes_every_partition_and_sends_go_on(stack: ChaosStack) -> None:
    await settled(stack, CHATS, timeout=60)
    timing: dict[str, float] = {}

    async def redis_away(s: ChaosStack) -> list[Episode]:
        s.kill_redis()
        t_fault = time.perf_counter()
        deadline = time.monotonic() + 4 * LEASE
        while await consumers(s) != [CHATS] * PARTITIONS:  # failed open: competing consumers
            assert time.monotonic() < deadline, f"not failed open: {await consumers(s)}"
            await asyncio.sleep(0.1)
        timing["failed_open"] = time.perf_counter() - t_fault
        await asyncio.sleep(4.0)  # sends meanwhile, on every partition by every replica
        await asyncio.to_thread(s.start_redis)
        t_back = time.perf_counter()
        timing["down"] = t_back - t_fault
        timing["leased_again"] = await settled(s, CHATS, timeout=20)
        return [Episode("redis kill -9, restarted empty", t_fault, t_back, "back")]

    report = await run_scenario(stack, "redis away", redis_away, CONFIG, warmup=4.0, after=5.0, settle=10.0)
    print(f"\n[partitions] Redis away {timing['down']:.1f} s: every replica on every partition "
          f"{timing['failed_open']:.1f} s after the kill; one replica per partition again "
          f"{timing['leased_again']:.1f} s after its return")
    passed(report, BOUNDS["redis"])
    # The load sent all along (30 a second): no attempt failed, those made while Redis was away included.
    assert report.errors == {}, report.errors
