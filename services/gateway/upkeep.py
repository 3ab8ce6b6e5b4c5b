"""The gateway's background work: presence upkeep, ended sessions, the login deadline, readiness.

Each loop runs once per gateway (not per socket) for as long as the gateway does, and survives
its backend being away: a failed round is logged and the next one tries again.
"""
import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from services.gateway.connections import CLOSE_LOGIN_TIMEOUT, CLOSE_SESSION_ENDED
from shared.contracts.base import Empty, utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.operations import OPERATIONS, SERVICES
from shared.logs import log_event

if TYPE_CHECKING:
    from services.gateway.gateway import Gateway

log = logging.getLogger("parley.gateway")

# How often a gateway checks that Redis still holds its sockets' presence (one key read).
PRESENCE_WATCH_SECONDS = 1.0
# /readyz answers within this, whichever backend is away (each check gets it at most).
READINESS_SECONDS = 1.5


class Upkeep:
    def __init__(self, gateway: "Gateway"):
        self.gateway = gateway
        # Why the sockets must be synced again on the next tick (None: they need not): chat
        # reported pushes it could not make, or Redis lost our sockets.
        self.resync_reason: str | None = None

    def start(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(loop())
            for loop in (self.heartbeat_loop, self.sweep_loop, self.presence_watch_loop, self.login_deadline_loop)
        ]

    async def heartbeat_loop(self) -> None:
        """Keep our sockets' presence alive; end sessions whose token expired or was revoked."""
        assert self.gateway.presence is not None and self.gateway.revocations is not None
        while True:
            await asyncio.sleep(self.gateway.settings.presence_ttl_seconds / 3)
            try:
                conns = self.gateway.hub.bound()
                now = int(utc_now().timestamp())
                try:
                    revoked = await self.gateway.revocations.revoked_among([c.session.token_id for c in conns if c.session])
                except ParleyError:  # neither Redis nor auth could say: keep presence, look next beat
                    revoked = set()
                for conn in conns:
                    if conn.session and (conn.session.token_id in revoked or conn.session.expires_at <= now):
                        await self.gateway.forget(conn)
                        conn.close(CLOSE_SESSION_ENDED)
                # A Redis that lost our sockets first gets them back silently; the refresh below
                # would otherwise take them all for swept and announce them online again.
                await self.restore_presence_if_lost()
                live = [c for c in conns if c.session is not None]
                dropped = await self.gateway.presence.refresh([c.socket_of(self.gateway.gateway_id) for c in live])
                for sock in dropped:  # we were too slow and got swept: come back
                    if await self.gateway.presence.bind(sock):
                        await self.gateway.announce(sock.user_id, online=True)
            except Exception as exc:
                log_event(log, "heartbeat.failed", logging.WARNING, error=repr(exc))

    async def sweep_loop(self) -> None:
        """Announce users whose last device sat on a gateway that died."""
        assert self.gateway.presence is not None
        while True:
            await asyncio.sleep(self.gateway.settings.presence_sweep_seconds)
            try:
                for user_id, last_seen in await self.gateway.presence.sweep():
                    await self.gateway.announce(user_id, online=False, last_seen=last_seen)
            except Exception as exc:
                log_event(log, "sweep.failed", logging.WARNING, error=repr(exc))

    async def restore_presence_if_lost(self) -> None:
        """Redis lost our sockets (restarted empty): write them back before anything else, and
        have them synced again (pushes meanwhile found no socket), whichever loop noticed."""
        assert self.gateway.presence is not None
        if not await self.gateway.presence.marker_was_lost(self.gateway.gateway_id):
            return
        live = [c.socket_of(self.gateway.gateway_id) for c in self.gateway.hub.bound()]
        if live:
            await self.gateway.presence.restore(live)
            self.resync_reason = "redis lost its data"
            log_event(log, "presence.restored", logging.WARNING, gateway_id=self.gateway.gateway_id, sockets=len(live))

    async def presence_watch_loop(self) -> None:
        """Every second: is Redis there and does it still hold our sockets; is RabbitMQ there?

        After either was away, live pushes sent meanwhile were lost (chat found no socket in
        Redis, or could not publish, or our deliver queue went with the broker): the sockets
        are synced again (Gateway.resync), so nobody waits for a reconnect to see them. So too
        when chat reports pushes it could not make (its own Redis connection may come back
        later than ours: a push failing after our resync would otherwise stay lost).
        """
        redis_failing = broker_down = False
        with suppress(Exception):  # our own marker, before any socket binds
            await self.restore_presence_if_lost()
        while True:
            await asyncio.sleep(PRESENCE_WATCH_SECONDS)
            try:
                await self.restore_presence_if_lost()
            except Exception as exc:  # Redis away: try again next second
                if not redis_failing:
                    log_event(log, "presence.watch_failed", logging.WARNING, error=repr(exc))
                redis_failing = True
                continue
            connected = self.gateway.broker.connected
            if redis_failing:
                self.resync_reason = "redis was away"
            elif connected and broker_down:
                # A tick after the reconnection: the deliver queue and its consumer are back.
                self.resync_reason = "rabbitmq was away"
            if self.resync_reason is not None:
                reason, self.resync_reason = self.resync_reason, None
                try:
                    await self.gateway.resync(reason)
                except Exception as exc:  # away again: try again next second
                    self.resync_reason = reason
                    log_event(log, "resync.failed", logging.WARNING, error=repr(exc))
                    continue
            redis_failing, broker_down = False, not connected

    async def login_deadline_loop(self) -> None:
        """Close sockets that have not logged in within the deadline (no task per socket)."""
        deadline = self.gateway.settings.ws_login_deadline_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, deadline / 4))
            now = loop.time()
            for conn in list(self.gateway.hub.by_conn.values()):
                if conn.session is None and not conn.closed and now - conn.unbound_since > deadline:
                    log_event(log, "socket.login_timeout", conn_id=conn.conn_id, address=conn.address)
                    conn.close(CLOSE_LOGIN_TIMEOUT)

    async def readiness(self) -> dict[str, str]:
        """Each dependency → "ok" or what is wrong, within READINESS_SECONDS whatever is away.

        RabbitMQ counts as up only while the connection is (a robust connection that is
        reconnecting is not closed, but nothing goes through it); MongoDB through each service's
        health operation, which pings it.
        """
        checks: dict[str, str] = {
            "rabbitmq": "ok" if self.gateway.broker.connected else "unreachable (reconnecting)",
        }

        async def ping_redis() -> None:
            assert self.gateway.redis is not None
            await self.gateway.redis.ping()

        async def ask(service: str) -> None:
            if not self.gateway.broker.connected:
                raise ParleyError.unavailable("RabbitMQ is unreachable")
            await self.gateway.call(OPERATIONS[f"{service}.health"], None, Empty())

        names = ["redis", *SERVICES]
        answers = await asyncio.gather(
            asyncio.wait_for(ping_redis(), READINESS_SECONDS),
            *(asyncio.wait_for(ask(s), READINESS_SECONDS) for s in SERVICES),
            return_exceptions=True,
        )
        for name, answer in zip(names, answers):
            if not isinstance(answer, BaseException):
                checks[name] = "ok"
            elif isinstance(answer, TimeoutError):
                checks[name] = f"no answer within {READINESS_SECONDS:g} s"
            elif isinstance(answer, ParleyError):
                checks[name] = answer.message
            else:
                checks[name] = f"unreachable: {answer!r}"
        return checks

