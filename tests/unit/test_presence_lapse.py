"""The gateway's heartbeat notices when its sockets' presence lapsed: a refresh that came later
than the entries' lifetime (Redis slow, or a Redis Cluster primary failing over for longer than
it) left chat seeing no live socket for a while, so pushes went nowhere; the sockets are synced
again, as after Redis was away. On real Redis (one, and a cluster)."""
import asyncio
import time

from services.gateway.connections import Connection, Session
from services.gateway.sessions import PendingResync
from services.gateway.upkeep import Heartbeat
from shared.presence import Presence
from tests.unit.helpers import redis_namespace

LIFETIME_TTL = 0.5  # entries live 0.4 s


class Hub:
    def __init__(self, *conns: Connection):
        self.conns = list(conns)

    def bound(self) -> list[Connection]:
        return self.conns


class NoneRevoked:
    async def revoked_among(self, token_ids: list[str]) -> set[str]:
        return set()


class Watch:
    """The PresenceWatch's part the heartbeat uses: what to resync next tick."""

    def __init__(self) -> None:
        self.resync = PendingResync()

    async def restore_if_lost(self) -> None:
        return None


class Sessions:
    async def announce(self, user_id: str, online: bool) -> None:
        return None


def connection(user: str) -> Connection:
    conn = Connection(f"c_{user}", websocket=None, max_queued_bytes=1024)  # type: ignore[arg-type]
    conn.session = Session(user, "phone", f"t_{user}", int(time.time()) + 3600)
    return conn


async def test_a_refresh_later_than_the_entries_lifetime_has_the_sockets_synced_again(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        presence = Presence(redis, namespace, ttl_seconds=LIFETIME_TTL)
        alice = connection("u_alice")
        await presence.bind(alice.socket_of("gw1"))
        watch = Watch()
        beat = Heartbeat(0.1, "gw1", Hub(alice), presence, NoneRevoked(), Sessions(), watch)  # type: ignore[arg-type]
        await beat.beat()
        await beat.beat()  # on time: nothing to resync
        assert watch.resync.reason is None
        await asyncio.sleep(0.6)  # the next refresh comes after the entries expired (not yet swept)
        assert await presence.sockets_of(["u_alice"]) == []  # what chat saw meanwhile: nobody to push to
        await beat.beat()
        assert watch.resync.reason == "presence lapsed"
        assert [s.user_id for s in await presence.sockets_of(["u_alice"])] == ["u_alice"]
