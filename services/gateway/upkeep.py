"""The gateway's background work: presence kept alive and swept, ended sessions closed, Redis
and RabbitMQ watched for what they lost, the login deadline.

Each loop runs once per gateway (not per socket) for as long as the gateway does, and survives
its backend being away: a failed round is logged and the next one tries again.
"""
import asyncio
import logging
import time
from contextlib import suppress

from services.gateway.connections import CLOSE_LOGIN_TIMEOUT, CLOSE_SESSION_ENDED, Hub
from services.gateway.sessions import PendingResync, Sessions
from shared.broker import Broker
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError
from shared.logs import log_event
from shared.presence import Presence
from shared.tokens import RevocationCheck

log = logging.getLogger("parley.gateway")

# How often a gateway checks that Redis still holds its sockets' presence (one key read).
PRESENCE_WATCH_SECONDS = 1.0


class PresenceWatch:
    """Every second: is Redis there and does it still hold our sockets; is RabbitMQ there?

    After either was away, live pushes sent meanwhile were lost (chat found no socket in
    Redis, or could not publish, or our deliver queue went with the broker): the sockets
    are synced again (Sessions.resync), so nobody waits for a reconnect to see them. So too
    when chat reports pushes it could not make (its own Redis connection may come back
    later than ours: a push failing after our resync would otherwise stay lost).
    """

    def __init__(
        self, gateway_id: str, hub: Hub, presence: Presence, broker: Broker, sessions: Sessions, resync: PendingResync
    ):
        self.gateway_id = gateway_id
        self.hub = hub
        self.presence = presence
        self.broker = broker
        self.sessions = sessions
        self.resync = resync

    async def restore_if_lost(self) -> None:
        """Redis lost our sockets (restarted empty): write them back before anything else, and
        have them synced again (pushes meanwhile found no socket), whichever loop noticed."""
        if not await self.presence.marker_was_lost(self.gateway_id):
            return
        live = [c.socket_of(self.gateway_id) for c in self.hub.bound()]
        if live:
            await self.presence.restore(live)
            self.resync.reason = "redis lost its data"
            log_event(log, "presence.restored", logging.WARNING, gateway_id=self.gateway_id, sockets=len(live))

    async def run(self) -> None:
        redis_failing = broker_down = False
        # A reconnection (to another node of a cluster: issue 27) can fall between two ticks,
        # the broker never seen down: counted by the Broker, so it is not missed.
        reconnections = self.broker.reconnections
        with suppress(Exception):  # our own marker, before any socket binds
            await self.restore_if_lost()
        while True:
            await asyncio.sleep(PRESENCE_WATCH_SECONDS)
            try:
                await self.restore_if_lost()
            except Exception as exc:  # Redis away: try again next second
                if not redis_failing:
                    log_event(log, "presence.watch_failed", logging.WARNING, error=repr(exc))
                redis_failing = True
                continue
            connected = self.broker.connected
            if redis_failing:
                self.resync.reason = "redis was away"
            elif connected and (broker_down or self.broker.reconnections != reconnections):
                # After the reconnection: the deliver queue and its consumer are back.
                self.resync.reason = "rabbitmq was away"
            reconnections = self.broker.reconnections
            if self.resync.reason is not None:
                reason, self.resync.reason = self.resync.reason, None
                try:
                    await self.sessions.resync(reason)
                except Exception as exc:  # away again: try again next second
                    self.resync.reason = reason
                    log_event(log, "resync.failed", logging.WARNING, error=repr(exc))
                    continue
            redis_failing, broker_down = False, not connected


class Heartbeat:
    """Keep our sockets' presence alive; end sessions whose token expired or was revoked."""

    def __init__(
        self, interval: float, gateway_id: str, hub: Hub, presence: Presence, revocations: RevocationCheck,
        sessions: Sessions, watch: PresenceWatch,
    ):
        self.interval = interval
        self.gateway_id = gateway_id
        self.hub = hub
        self.presence = presence
        self.revocations = revocations
        self.sessions = sessions
        self.watch = watch
        # When our sockets' presence entries expire unless refreshed (wall clock, as their scores).
        self.expires_at: float | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception as exc:
                log_event(log, "heartbeat.failed", logging.WARNING, error=repr(exc))

    async def beat(self) -> None:
        conns = self.hub.bound()
        now = int(utc_now().timestamp())
        try:
            revoked = await self.revocations.revoked_among([c.session.token_id for c in conns if c.session])
        except ParleyError:  # neither Redis nor auth could say: keep presence, look next beat
            revoked = set()
        for conn in conns:
            if conn.session and (conn.session.token_id in revoked or conn.session.expires_at <= now):
                await self.sessions.forget(conn)
                conn.close(CLOSE_SESSION_ENDED)
        # A Redis that lost our sockets first gets them back silently; the refresh below
        # would otherwise take them all for swept and announce them online again.
        await self.watch.restore_if_lost()
        live = [c for c in conns if c.session is not None]
        started = time.time()
        dropped = await self.presence.refresh([c.socket_of(self.gateway_id) for c in live])
        lapsed = self.expires_at is not None and time.time() > self.expires_at
        self.expires_at = started + self.presence.lifetime
        for sock in dropped:  # we were too slow and got swept: come back
            if await self.presence.bind(sock):
                await self.sessions.announce(sock.user_id, online=True)
        if lapsed or dropped:
            # Our entries were expired for a while (Redis slow or failing over, e.g. a Redis
            # Cluster primary replaced, without losing our marker): chat found no live socket
            # for our users meanwhile and pushed nothing. Sync them, as after Redis was away.
            self.watch.resync.reason = "presence lapsed"
            log_event(log, "presence.lapsed", logging.WARNING, gateway_id=self.gateway_id, dropped=len(dropped))


class Sweeper:
    """Announce users whose last device sat on a gateway that died."""

    def __init__(self, interval: float, presence: Presence, sessions: Sessions):
        self.interval = interval
        self.presence = presence
        self.sessions = sessions

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                for user_id, last_seen in await self.presence.sweep():
                    await self.sessions.announce(user_id, online=False, last_seen=last_seen)
            except Exception as exc:
                log_event(log, "sweep.failed", logging.WARNING, error=repr(exc))


class LoginDeadline:
    """Close sockets that have not logged in within the deadline (no task per socket)."""

    def __init__(self, deadline: float, hub: Hub):
        self.deadline = deadline
        self.hub = hub

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.deadline / 4))
            now = loop.time()
            for conn in list(self.hub.by_conn.values()):
                if conn.session is None and not conn.closed and now - conn.unbound_since > self.deadline:
                    log_event(log, "socket.login_timeout", conn_id=conn.conn_id, address=conn.address)
                    conn.close(CLOSE_LOGIN_TIMEOUT)
