"""Binding a socket to (user, device) and letting go of it: the hub's index, the admission
counts, presence in Redis and the online/offline events, and the sync stream chat sends on bind."""
import asyncio
import logging
from contextlib import suppress
from typing import Any

from services.gateway.admission import Admission
from services.gateway.connections import CLOSE_REPLACED, Connection, Hub, Session
from services.gateway.frames import reply_ok
from services.gateway.identity import caller_for
from shared.broker import Broker
from shared.contracts.chat import DeviceBound, PresenceChanged
from shared.contracts.errors import ParleyError
from shared.contracts.operations import CHAT_SYNC
from shared.ids import new_id
from shared.logs import log_event
from shared.presence import Presence
from shared.settings import Settings
from shared.tokens import TokenClaims

log = logging.getLogger("parley.gateway")

# Sockets resynced between two yields to the loop (their own traffic goes on meanwhile).
RESYNC_BATCH = 200


class PendingResync:
    """Why the sockets must be synced again on the presence watch's next tick (None: they need
    not): chat reported pushes it could not make, or Redis or RabbitMQ was away."""

    def __init__(self) -> None:
        self.reason: str | None = None


class Sessions:
    def __init__(
        self, settings: Settings, gateway_id: str, hub: Hub, admission: Admission, presence: Presence, broker: Broker
    ):
        self.settings = settings
        self.gateway_id = gateway_id
        self.hub = hub
        self.admission = admission
        self.presence = presence
        self.broker = broker

    async def bind(
        self, conn: Connection, claims: TokenClaims, device_id: str, frame_id: str, reply: dict[str, Any]
    ) -> None:
        """Bind, answer, then ask chat for the sync stream (the reply must come first)."""
        await self.forget(conn)
        if not self.admission.may_bind(claims.user_id):
            raise ParleyError.rate_limited(
                f"this user already holds {self.settings.ws_max_sockets_per_user} sockets here; close one first",
            )
        conn.session = session = Session(claims.user_id, device_id, claims.token_id, claims.expires_at)
        self.admission.bound(conn.address, claims.user_id)
        conn.syncing = True
        for old in self.hub.bind(conn):
            old.close(CLOSE_REPLACED)
        if await self.presence.bind(conn.socket_of(self.gateway_id)):
            await self.announce(claims.user_id, online=True)
        conn.send(reply_ok(frame_id, reply))
        await self._ask_sync(conn, session, frame_id)
        log_event(log, "socket.bound", user_id=claims.user_id, device_id=device_id, conn_id=conn.conn_id)

    async def _ask_sync(self, conn: Connection, session: Session, request_id: str) -> None:
        """Chat streams the socket everything above its device's cursors, then `sync.done`."""
        bound = DeviceBound(
            user_id=session.user_id, device_id=session.device_id, gateway_id=self.gateway_id, conn_id=conn.conn_id
        )
        caller = caller_for(self.gateway_id, request_id, session, conn_id=conn.conn_id, address=conn.address)
        await self.broker.send_command(CHAT_SYNC, caller, bound)

    async def resync(self, reason: str) -> None:
        """Sync every bound socket again, unasked: live pushes were lost (Redis or RabbitMQ was
        away, so chat could not find or reach the sockets) and what they carried is above the
        devices' cursors. Clients drop what they already hold by seq; until `sync.done` live
        pushes wait, as on bind, so each conversation still arrives in ascending seq."""
        conns = self.hub.bound()  # syncing ones too: their sync stream may be what was lost
        for i, conn in enumerate(conns):
            session = conn.session
            if session is None or conn.closed:
                continue
            conn.syncing = True
            try:
                await self._ask_sync(conn, session, new_id("resync"))
            except ParleyError:  # the broker went away again: the next recovery resyncs
                conn.finish_sync()
                raise
            if i % RESYNC_BATCH == RESYNC_BATCH - 1:
                await asyncio.sleep(0)  # let the sockets' own traffic through
        log_event(log, "sockets.resynced", logging.WARNING, reason=reason, sockets=len(conns))

    async def forget(self, conn: Connection) -> None:
        """Unbind a socket (logout, rebind, close); announce if it was the user's last device."""
        if conn.session is None:
            return
        sock = conn.socket_of(self.gateway_id)
        self.hub.unbind(conn)
        self.admission.unbound(conn.address, sock.user_id)
        conn.unbound_since = asyncio.get_running_loop().time()
        conn.session = None
        conn.syncing = False
        conn.drop_held_back()
        with suppress(Exception):  # Redis down: the sweeper announces it later
            if last_seen := await self.presence.unbind(sock):
                await self.announce(sock.user_id, online=False, last_seen=last_seen)

    async def announce(self, user_id: str, online: bool, last_seen: str | None = None) -> None:
        event = PresenceChanged(user_id=user_id, online=online, last_seen=last_seen)
        await self.broker.publish_event("presence.changed", event)
