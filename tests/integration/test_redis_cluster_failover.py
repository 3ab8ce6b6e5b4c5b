"""A Redis Cluster primary killed -9 under load: its replica takes over, and presence, rate
limits, calls and revocations work again within a bound; what was stored before stays.

Its own six-node cluster (cluster-node-timeout 1000 ms), so the kill hurts no other test. The
load is the stores themselves, as the services call them, each family in a loop of its own:
presence (bind, status, unbind), the send rate limit (coalesced takes of many users), calls
(begin, accept, end) and the revocation cache (revoke, then ask), each call retried at once
when it fails, the failures counted by kind. The figures are docs/reliability.md's
"Redis Cluster" bound.
"""
import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest

from deploy.local.redis_cluster import RedisCluster6
from services.calls.domain.ports import Call
from services.calls.storage.call_store import RedisCallStore
from shared.presence import DeviceSocket, Presence
from shared.ratelimit import CoalescedTakes, TokenBucket
from shared.settings import Settings
from shared.stores import redis_client
from shared.tokens import Revocations, marker_run_id
from tests.support import leaks

log = logging.getLogger("parley.tests.failover")

# What a failover may cost each family, from the kill to its first call that works again:
# cluster-node-timeout (1 s) until the primary is marked failed, the replica's election (~1 s),
# the client's slot refresh. Measured ~2-4 s on the 2-core test machine (docs/reliability.md).
RECOVERY_BOUND_SECONDS = 10.0
NS = "failover"


@pytest.fixture
def cluster() -> Iterator[RedisCluster6]:
    with RedisCluster6(node_timeout_ms=1000) as found:
        leaks.keep(found)
        yield found
        leaks.release(found)


class Family:
    """One kind of store call in a loop: when each call worked, what each failure was."""

    def __init__(self, name: str, step: Callable[[int], Awaitable[None]]):
        self.name = name
        self.step = step
        self.ok: list[float] = []
        self.errors: Counter[str] = Counter()

    async def run(self, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                async with asyncio.timeout(6):
                    await self.step(i)
                self.ok.append(time.monotonic())
            except Exception as exc:  # what a caller would see; counted, then tried again
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)

    def back_after(self, killed: float) -> float:
        """Seconds from the kill to the first call that worked after it."""
        after = [t for t in self.ok if t > killed]
        return after[0] - killed if after else float("inf")

    def longest_gap_after(self, killed: float) -> float:
        """The longest wait between two calls that worked, from the kill on."""
        times = [killed] + [t for t in self.ok if t > killed]
        return max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else float("inf")


async def test_a_primary_killed_under_load_is_replaced_and_every_family_works_again(cluster: RedisCluster6) -> None:
    settings = Settings(redis_url=cluster.url, redis_cluster=True)
    redis = redis_client(settings)
    try:
        presence = Presence(redis, NS, ttl_seconds=300)
        bucket = TokenBucket(redis, NS, "send", 1000.0, 1000)
        takes = CoalescedTakes(bucket, timeout=5)
        calls = RedisCallStore(redis, NS)
        revocations = Revocations(redis, NS)

        # Stored before the fault: 60 users online, 30 calls ringing, 200 tokens revoked, the
        # revocation cache marked complete for this cluster's primaries.
        before_users = [f"u_before_{i}" for i in range(60)]
        for user in before_users:
            await presence.bind(DeviceSocket(user, "phone", "gw1", f"c_{user}"))
        now = time.time()
        before_calls = [Call(f"call_b{i}", "cv", f"u_caller_{i}", "d", f"u_callee_{i}", "audio", "ringing", now,
                             now + 600) for i in range(30)]
        for call in before_calls:
            assert await calls.begin(call) == "ok"
        revoked = [f"t_before_{i}" for i in range(200)]
        await revocations.revoke_many((t, int(now) + 600) for t in revoked)
        run_before = await revocations.run_id()
        assert await revocations.finish_rebuild(await revocations.begin_rebuild(), run_before)
        await asyncio.sleep(0.5)  # replicated (asynchronously) to every replica

        async def presence_step(i: int) -> None:
            sock = DeviceSocket(f"u_load_{i % 40}", "phone", "gw2", f"c{i}")
            await presence.bind(sock)
            assert (await presence.status_of([sock.user_id]))[sock.user_id][0]
            await presence.unbind(sock)

        async def rate_step(i: int) -> None:
            await asyncio.gather(*(takes.take(f"u_load_{(i + j) % 97}") for j in range(20)))

        async def call_step(i: int) -> None:
            t = time.time()
            call = Call(f"call_l{i}", "cv", f"u_lc_{i}", "d", f"u_le_{i}", "audio", "ringing", t, t + 60)
            assert await calls.begin(call) == "ok"
            assert (await calls.accept(call.call_id, "d2", t))[0] == "ok"
            assert await calls.end(call.call_id) is not None

        async def revocation_step(i: int) -> None:
            await revocations.revoke(f"t_load_{i}", int(time.time()) + 600)
            await revocations.cached_among([f"t_load_{i}", *revoked[:5]])

        families = [Family("presence", presence_step), Family("rate limit", rate_step),
                    Family("calls", call_step), Family("revocations", revocation_step)]
        stop = asyncio.Event()
        loops = [asyncio.create_task(f.run(stop)) for f in families]
        await asyncio.sleep(1.0)
        victim = cluster.primaries()[0]
        killed = time.monotonic()
        cluster.kill9(victim)
        while time.monotonic() - killed < RECOVERY_BOUND_SECONDS and any(f.back_after(killed) == float("inf")
                                                                          for f in families):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # and they go on working
        stop.set()
        await asyncio.gather(*loops)

        figures = {f.name: (round(f.back_after(killed), 2), round(f.longest_gap_after(killed), 2), dict(f.errors))
                   for f in families}
        log.warning("failover of primary %s: family -> (back after s, longest gap s, errors) %s", victim, figures)
        print(f"failover of primary {victim}: {figures}")
        for f in families:
            assert f.longest_gap_after(killed) < RECOVERY_BOUND_SECONDS, figures
        assert victim not in cluster.primaries()  # its replica took over

        # Nothing stored before the fault is lost.
        status = await presence.status_of(before_users)
        assert all(online for online, _ in status.values())
        assert {c.call_id for c in await calls.live()} >= {c.call_id for c in before_calls}
        assert await redis.exists(*(revocations.prefix + t for t in revoked)) == len(revoked)
        # The revocation cache's run id names the primaries: a failover changes it, so auth
        # rebuilds the cache from MongoDB (what a failover's last unreplicated writes lost).
        assert await revocations.run_id() != run_before
        assert marker_run_id(await revocations.marker()) == run_before
    finally:
        await redis.aclose()
