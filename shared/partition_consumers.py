"""A service's partition queues (shared/partitions.py), each consumed by one replica at a time.

Why: chat hands out a conversation's seqs from an in-memory hint; when every replica took every
send (competing consumers on one queue) their hints went stale, sends clashed on the unique
(conversation_id, seq) index and read to catch up: 3 replicas cost chat 7x the CPU per message
and the database 4.3x (issue 26, docs/scaling.md). Here each replica consumes only the
partitions whose lease it holds in Redis, so a conversation's sends meet one replica's memory.

How, every third of `lease_seconds` (a "tick"):
- the replica beats in the roster, `<ns>:partitions:{<service>}:replicas` (a sorted set scored by
  expiry: the live replicas are its members not expired), and reads which are live;
- its fair share is P // live, one more for the first P % live replicas by id (`fair_share`:
  the shares add up to P); it renews the leases it holds (`<ns>:lease:{<service>
  .partition.<p>}`, shared/periodic.Leases: one hash tag per key, so each script runs in one
  Redis Cluster slot), gives up those beyond its share (a replica just started is then taken in),
  and takes free ones up to its share, starting at a place of its own in the ring;
- it consumes the partitions it holds: a lease lost cancels that queue's consumer (what it had
  taken finishes and is acked as usual), one given up is cancelled a tick later (`balance`), one
  won starts one.
A replica killed -9 stops renewing: its leases and its roster entry expire within
`lease_seconds`, and within a tick more the others count one replica fewer and take its
partitions: the bound is `lease_seconds` x 4/3. (The roster's expiries are the replicas' own
clocks: they must agree to well under a lease, as NTP keeps them.)

Correctness never rests on the lease: two replicas consuming one partition for a while (a
handover, a paused process, Redis failing) only cost clashes, which the unique index arbitrates
as before. So when Redis fails, the replica fails open: it consumes every partition (competing
consumers, as before issue 26) and goes back to its share at the first tick that Redis answers.
"""
import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from shared.broker import Broker
from shared.contracts.operations import Operation
from shared.logs import log_event
from shared.metrics import PARTITIONS_CONSUMED, PARTITIONS_FAILING_OPEN
from shared.partitions import partition_of, partition_routing_key
from shared.periodic import Leases
from shared.redis_slots import REDIS_ERRORS

log = logging.getLogger("parley.partitions")

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[None]]


def fair_share(partitions: int, live: list[str], holder: str) -> int:
    """How many partitions `holder` holds at most: P // N, one more for the first P % N replicas
    by id, so that the shares add up to P (16 on 3 replicas: 6, 5, 5). A holder not in the
    list (its beat not yet seen) counts itself in."""
    replicas = sorted(set(live) | {holder})
    base, extra = divmod(partitions, len(replicas))
    return base + (1 if replicas.index(holder) < extra else 0)


def first_to_try(holder: str, partitions: int) -> list[int]:
    """The ring from a place of this replica's own: replicas starting together try different
    partitions first instead of all racing for partition 0."""
    start = partition_of(holder, partitions)
    return [(start + i) % partitions for i in range(partitions)]


class Roster:
    """The live replicas of a service: each beats with an expiry; the unexpired ones are live."""

    def __init__(self, leases: Leases, service: str):
        self.redis = leases.redis
        self.holder = leases.holder
        self.key = f"{leases.namespace}:partitions:{{{service}}}:replicas"

    async def beat(self, ttl: float) -> list[str]:
        """This replica is live for `ttl` s more: the live replicas now, itself included."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key, {self.holder: now + ttl})
            pipe.zremrangebyscore(self.key, "-inf", now)
            pipe.zrange(self.key, 0, -1)
            _, _, live = await pipe.execute()
        return [m.decode() if isinstance(m, bytes) else str(m) for m in live]

    async def leave(self) -> None:
        with suppress(*REDIS_ERRORS):  # Redis away: the entry expires by itself
            await self.redis.zrem(self.key, self.holder)


class PartitionConsumers:
    """The partition queues of one service in one replica: declared, balanced, consumed."""

    def __init__(
        self, broker: Broker, service: str, operations: list[Operation[Any, Any]], partitions: int,
        lease_seconds: float, leases: Leases | None, on_message: OnMessage,
    ):
        self.broker = broker
        self.service = service
        self.operations = operations
        self.partitions = partitions
        self.lease_seconds = lease_seconds
        self.on_message = on_message
        # A lease store of its own (the same holder): released on stop after the in-flight
        # commands finish, not with the periodic jobs' leases.
        self.leases = Leases(leases.redis, leases.namespace, leases.holder) if leases is not None else None
        self.roster = Roster(leases, service) if leases is not None else None
        self.held: set[int] = set()
        self.failing_open = False
        self._queues: list[AbstractQueue] = []
        self._consumers: dict[int, str] = {}  # partition -> consumer tag
        self._order = first_to_try(leases.holder if leases is not None else "", partitions)
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @property
    def consuming(self) -> set[int]:
        return set(self._consumers)

    def _job(self, partition: int) -> str:
        return f"{self.service}.partition.{partition}"

    async def start(self, arguments: dict[str, Any], prefetch: int) -> None:
        """Declare every partition queue (so a publish to any is routable whoever holds it), take
        this replica's share, and keep balancing until `stop`."""
        names = self.broker.names
        channel = await self.broker.channel(prefetch=prefetch)  # per consumer: each queue its own bound
        for partition in range(self.partitions):
            queue = await channel.declare_queue(
                names.partition_queue(self.service, partition), durable=True, arguments=arguments
            )
            for op in self.operations:
                await queue.bind(names.commands, partition_routing_key(op.routing_key, partition))
            self._queues.append(queue)
        await self.balance()
        if self.leases is not None:
            self._loop = asyncio.create_task(self._balance_forever(), name=f"{self.service}.partitions")

    async def _balance_forever(self) -> None:
        tick = self.lease_seconds / 3
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), tick * random.uniform(0.8, 1.0))
            if self._stopping.is_set():
                return
            try:
                await self.balance()
            except Exception as exc:  # a bug: logged, tried again next tick (consumers stay as they are)
                log_event(log, "partitions.balance_failed", logging.ERROR, exc=exc, error=repr(exc))

    async def balance(self) -> None:
        """One tick: the partitions to consume (this replica's leases, or all of them while Redis
        fails), consumed. One given up is released at once but consumed until the next tick, by
        which the replica it is meant for has taken it (its ticks are as long): a handover
        overlaps for up to a tick (clashes, arbitrated by the unique index) rather than leaving
        the partition without a consumer for up to a tick (its sends waiting)."""
        given_up: list[int] = []
        if self.leases is None:
            wanted = set(range(self.partitions))
        else:
            try:
                wanted, given_up = await self._lease_share()
                if self.failing_open:
                    log_event(log, "partitions.leased_again", service=self.service)
                self.failing_open = False
            except REDIS_ERRORS as exc:
                if not self.failing_open:
                    log_event(log, "partitions.fail_open", logging.WARNING, service=self.service, error=repr(exc))
                self.failing_open = True
                wanted = set(range(self.partitions))
        PARTITIONS_FAILING_OPEN.labels(self.service).set(int(self.failing_open))
        await self._consume_only(wanted | set(given_up))
        if self.leases is not None:
            for partition in given_up:
                await self.leases.release(self._job(partition))

    async def _lease_share(self) -> tuple[set[int], list[int]]:
        """Renew, give up beyond the fair share, take up to it: (held, given up)."""
        assert self.leases is not None and self.roster is not None
        live = await self.roster.beat(self.lease_seconds)
        share = fair_share(self.partitions, live, self.leases.holder)
        for partition in sorted(self.held):
            if await self.leases.hold(self._job(partition), self.lease_seconds) is None:
                self.held.discard(partition)  # expired and taken by another (a pause, a Redis restart)
        given_up = sorted(self.held, reverse=True)[: max(0, len(self.held) - share)]
        self.held.difference_update(given_up)
        for partition in self._order:
            if len(self.held) >= share:
                break
            if partition in self.held or partition in given_up:
                continue
            if await self.leases.hold(self._job(partition), self.lease_seconds) is not None:
                self.held.add(partition)
        return set(self.held), given_up

    async def _consume_only(self, wanted: set[int]) -> None:
        """Consumers on exactly `wanted`. The broker away: what could not change is tried again
        next tick (a robust channel restores the consumers it had)."""
        before = self.consuming
        for partition in sorted(before - wanted):
            try:
                await self._queues[partition].cancel(self._consumers[partition])
                del self._consumers[partition]
            except Exception as exc:
                log_event(log, "partitions.cancel_failed", logging.WARNING, partition=partition, error=repr(exc))
        for partition in sorted(wanted - before):
            try:
                self._consumers[partition] = await self._queues[partition].consume(self.on_message)
            except Exception as exc:
                log_event(log, "partitions.consume_failed", logging.WARNING, partition=partition, error=repr(exc))
        now = self.consuming
        PARTITIONS_CONSUMED.labels(self.service).set(len(now))
        if now != before:
            log_event(
                log, "partitions.consuming", service=self.service, partitions=sorted(now),
                failing_open=self.failing_open,
            )

    async def stop_consuming(self) -> None:
        """No more balancing, every consumer cancelled (what was taken finishes: ServiceRunner.stop)."""
        self._stopping.set()
        if self._loop is not None:
            await self._loop
        await self._consume_only(set())

    async def release(self) -> None:
        """After the in-flight commands: the others take these partitions at their next tick."""
        if self.leases is not None and self.roster is not None:
            await self.roster.leave()
            await self.leases.release_all()
        self.held.clear()
