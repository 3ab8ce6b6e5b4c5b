"""The sockets this gateway holds, and how pushes reach them.

Each socket's outbound frames are written by a writer task of its own, so a slow client never
holds up the others. What waits for one socket (replies, pushes, and the live pushes held back
while it syncs) is bounded in bytes, `outbound_queue_max_bytes`: a client that falls further
behind is closed with 4008 at once — what was queued for it is dropped, the close frame goes
out past it (uvicorn would otherwise wait for the client to read first), and the connection is
cut if the client does not read even that within CLOSE_GRACE_SECONDS. It reconnects and
resyncs, losing nothing (unacknowledged messages stay above its cursors). While a socket's
bind-time sync is streaming, live pushes wait in a side buffer and follow `sync.done`, so the
client sees each conversation in ascending seq.

Most sockets are idle most of the time, and the gateway's memory is counted per socket: an
idle socket holds no queue and no task. The writer task and its queue exist only while frames
wait to be written.
"""
import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.websockets import WebSocket

from services.gateway.metrics import SLOW_CLOSES
from shared.logs import log_event
from shared.presence import DeviceSocket

log = logging.getLogger("parley.gateway")

CLOSE_RESTARTING = 1012  # the gateway is stopping (SIGTERM): reconnect, to any gateway
CLOSE_TOO_SLOW = 4008
CLOSE_REPLACED = 4009
CLOSE_SESSION_ENDED = 4401
CLOSE_LOGIN_TIMEOUT = 4408  # no auth.login / auth.resume within the login deadline
# A socket closed for being too slow that does not read its close frame either is cut this long after.
CLOSE_GRACE_SECONDS = 5.0

# Close now, past whatever waits to be written (services/gateway/wsprotocol.py puts it in the scope).
ForceClose = Callable[[int, float], None]
FORCE_CLOSE_SCOPE_KEY = "parley.force_close"
# Several text frames (UTF-8 bytes) in one write to the connection (wsprotocol.py puts it in the
# scope); without it (a test server) each frame goes through the ASGI send.
SendTexts = Callable[[list[bytes]], Awaitable[None]]
SEND_TEXTS_SCOPE_KEY = "parley.send_texts"
# At most this many bytes of frames in one write (and at least one frame).
WRITE_BATCH_BYTES = 64 * 1024


@dataclass
class Session:
    user_id: str
    device_id: str
    token_id: str
    expires_at: int


@dataclass(eq=False, slots=True)
class Connection:
    conn_id: str
    websocket: WebSocket
    max_queued_bytes: int
    address: str = ""
    session: Session | None = None
    syncing: bool = False
    held_back: list[bytes] = field(default_factory=list)
    closed: bool = False
    close_code: int | None = None
    # Bytes in `outbound` and `held_back` together.
    queued_bytes: int = 0
    # Loop time since which it has not been bound (opened, or logged out): the login deadline.
    unbound_since: float = 0.0
    # Frames waiting for the writer, and the writer: both None while nothing waits.
    outbound: deque[bytes] | None = field(default=None, init=False, repr=False)
    writer: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def socket_of(self, gateway_id: str) -> DeviceSocket:
        assert self.session is not None
        return DeviceSocket(self.session.user_id, self.session.device_id, gateway_id, self.conn_id)

    def _fits(self, frame: bytes) -> bool:
        """Count the frame in; False (and the socket closed as too slow) past the byte bound."""
        if self.queued_bytes + len(frame) > self.max_queued_bytes:
            log_event(
                log, "socket.too_slow", logging.WARNING, conn_id=self.conn_id, queued_bytes=self.queued_bytes,
                user_id=self.session.user_id if self.session else None,
            )
            SLOW_CLOSES.inc()
            self.abort(CLOSE_TOO_SLOW)
            return False
        self.queued_bytes += len(frame)
        return True

    def send(self, frame: bytes) -> None:
        """Queue one frame for the writer; never blocks the caller."""
        if self.closed or not self._fits(frame):
            return
        if self.outbound is None:
            self.outbound = deque()
        self.outbound.append(frame)
        self._start_writer()

    def send_live(self, frame: bytes) -> None:
        if not self.syncing:
            self.send(frame)
        elif not self.closed and self._fits(frame):
            self.held_back.append(frame)

    def finish_sync(self) -> None:
        self.syncing = False
        held, self.held_back = self.held_back, []
        for frame in held:
            self.queued_bytes -= len(frame)
            self.send(frame)

    def drop_held_back(self) -> None:
        """Unbound mid-sync: the live pushes held for the old session go."""
        self.queued_bytes -= sum(len(f) for f in self.held_back)
        self.held_back = []

    def abort(self, code: int) -> None:
        """Close at once, dropping what waits: the close frame goes out ahead of it."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.outbound, self.held_back, self.queued_bytes = None, [], 0
        force_close: ForceClose | None = getattr(self.websocket, "scope", {}).get(FORCE_CLOSE_SCOPE_KEY)
        if force_close is None:  # not our protocol (a test server): close after the writer
            self._start_writer()
            return
        if self.writer is not None:
            self.writer.cancel()
        force_close(code, CLOSE_GRACE_SECONDS)

    def close(self, code: int) -> None:
        """Ask the writer to close the socket after what is queued (idempotent)."""
        if not self.closed:
            self.closed = True
            self.close_code = code
            self._start_writer()

    async def wait_written(self) -> None:
        """Until the writer has written what was queued (and the close frame, once closed)."""
        if self.writer is not None:
            await asyncio.wait([self.writer])  # a writer cancelled by abort() raises nothing here

    def _start_writer(self) -> None:
        if self.writer is None:
            self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """Write the queued frames in order, then the close frame if closed; then end.

        Between the last empty check and `writer = None` nothing is awaited unless the socket
        is closed (and then nothing more is queued), so a frame queued meanwhile is either
        written by this task or starts the next one: one writer at a time, frames in order.
        """
        send_texts: SendTexts | None = getattr(self.websocket, "scope", {}).get(SEND_TEXTS_SCOPE_KEY)
        try:
            try:
                while self.outbound:
                    if send_texts is None:
                        frame = self.outbound.popleft()
                        self.queued_bytes -= len(frame)
                        await self.websocket.send_text(frame.decode())
                        continue
                    # What was queued since the last write, in one write (one syscall rather
                    # than one per frame: a batch's replies, a delivery's pushes).
                    frames: list[bytes] = []
                    size = 0
                    while self.outbound and (not frames or size + len(self.outbound[0]) <= WRITE_BATCH_BYTES):
                        frame = self.outbound.popleft()
                        size += len(frame)
                        frames.append(frame)
                    self.queued_bytes -= size
                    await send_texts(frames)
            except Exception:  # the peer went away; the reader sees it too
                self.closed = True
            if self.closed and self.close_code is not None:
                with suppress(Exception):
                    await self.websocket.close(self.close_code)
        except BaseException:  # cancelled: write nothing more
            self.closed = True
            raise
        finally:
            if self.outbound is not None:
                self.queued_bytes -= sum(len(f) for f in self.outbound)
            self.outbound = None
            self.writer = None


class Hub:
    """Index of this gateway's sockets by connection id and by (user, device)."""

    def __init__(self) -> None:
        self.by_conn: dict[str, Connection] = {}
        self.by_device: dict[tuple[str, str], set[Connection]] = defaultdict(set)

    def add(self, conn: Connection) -> None:
        self.by_conn[conn.conn_id] = conn

    def bind(self, conn: Connection) -> list[Connection]:
        """Index a bound socket; returns older sockets of the same device, which it replaces."""
        assert conn.session is not None
        key = (conn.session.user_id, conn.session.device_id)
        replaced = [c for c in self.by_device[key] if c is not conn]
        self.by_device[key] = {conn}
        return replaced

    def unbind(self, conn: Connection) -> None:
        if conn.session is None:
            return
        key = (conn.session.user_id, conn.session.device_id)
        sockets = self.by_device.get(key)
        if sockets is not None:
            sockets.discard(conn)
            if not sockets:
                del self.by_device[key]

    def remove(self, conn: Connection) -> None:
        self.unbind(conn)
        self.by_conn.pop(conn.conn_id, None)

    def bound(self) -> list[Connection]:
        return [c for c in self.by_conn.values() if c.session is not None and not c.closed]

    def dispatch(self, delivery: dict[str, Any]) -> None:
        """Hand a delivery's pushes to the sockets it names (synchronously: order is kept).

        `delivery` is a Delivery (shared/contracts/wire.py) as JSON: `pushes`, and `conn_id` and
        `sync`, or `targets` (a missing field is its default)."""
        frames = [(p["type"], orjson.dumps({"type": p["type"], "data": p["data"]})) for p in delivery["pushes"]]
        conn_id = delivery.get("conn_id")
        if conn_id is not None:
            conn = self.by_conn.get(conn_id)
            if conn is None or conn.session is None:
                return  # gone: what it missed stays above its cursors
            sync = delivery.get("sync", False)
            for kind, frame in frames:
                if sync:
                    conn.send(frame)
                    if kind == "sync.done":
                        conn.finish_sync()
                else:
                    conn.send_live(frame)
            return
        for target in delivery.get("targets", ()):
            for conn in self.by_device.get((target["user_id"], target["device_id"]), ()):
                for _, frame in frames:
                    conn.send_live(frame)
