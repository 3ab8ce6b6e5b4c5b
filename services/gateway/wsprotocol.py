"""The gateway's WebSocket protocol for uvicorn: uvicorn's websockets-sansio, lighter when idle.

An idle socket costs what its objects hold for the socket's whole life, and uvicorn's protocol
holds more than it uses: an asyncio.Queue for received messages (four empty deques, ~3.7 KiB),
an asyncio.Event for write flow control (one empty deque, ~1.1 KiB), and the upgrade request
and response (parsed headers: ~3 KiB for a bare client, more for a browser's cookies and user
agent) that nothing reads after the handshake. This subclass swaps the first two for
equivalents that allocate only while someone waits, and lets go of the last once the
handshake is sent (the ASGI scope keeps its own copy of the request headers for the app).
Frames, close codes, keepalive pings and size limits are uvicorn's own, with two changes:

- uvicorn stops reading the connection after each data frame until the app takes it, so a
  socket whose requests the gateway is not taking yet (MAX_IN_FLIGHT_PER_SOCKET reached, a
  backend slow) is not read at all: its pongs go unread and uvicorn's keepalive closes it with
  1011. Here reading goes on while the frames waiting for the app stay under INBOX_MAX_BYTES
  (control frames are handled as they arrive); past that, reading pauses as in uvicorn.
- `send_texts(frames)` (in the ASGI scope under SEND_TEXTS_SCOPE_KEY) writes several text frames,
  given as the UTF-8 bytes the gateway encodes, in one write to the transport: uvicorn's send
  takes a str (decoded by the gateway, encoded again here) and writes each frame on its own.
- `force_close(code, grace)` (in the ASGI scope under FORCE_CLOSE_SCOPE_KEY) sends the close
  frame at once, even while the client is not reading (uvicorn's own close waits until the
  write buffer drains, i.e. forever for such a client), and cuts the connection if the client
  has not answered it within `grace` seconds.

It leans on uvicorn's internals (the attributes `queue`, `writable`, `request`, `response` of
WebSocketsSansIOProtocol, uvicorn 0.54); tests/unit/test_gateway_sockets.py runs it on the
installed uvicorn, so an upgrade that changes them fails there first.
"""
import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from services.gateway.connections import FORCE_CLOSE_SCOPE_KEY, SEND_TEXTS_SCOPE_KEY


# Bytes of received frames waiting for the app before the connection is no longer read.
INBOX_MAX_BYTES = 1024 * 1024


def _size(item: ASGIReceiveEvent) -> int:
    """A received frame's bytes (every other event weighs nothing)."""
    if item["type"] != "websocket.receive":
        return 0
    data = item.get("text") or item.get("bytes") or b""
    return len(data)


class Inbox:
    """What uvicorn asks of its receive queue (put_nowait, get, empty), for its one reader.

    The ASGI app is the only reader (one `receive()` at a time, as the ASGI spec has it); a
    second concurrent reader is refused rather than left waiting forever. `bytes` counts what
    waits, for the read pause.
    """

    __slots__ = ("_items", "_waiter", "bytes")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self.bytes = 0

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
        self.bytes += _size(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> ASGIReceiveEvent:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("another coroutine is already waiting for this socket's next message")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        item = self._items.pop(0)
        self.bytes -= _size(item)
        return item


class Flag:
    """What uvicorn asks of its `writable` event (set, clear, is_set, wait); waiters only while any wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with the idle-time savings above (`ws=` of uvicorn.run)."""

    request: Any
    # uvicorn annotates these asyncio.Queue and asyncio.Event, and calls on them only the methods
    # Inbox and Flag have: a gap in its typing (no protocol to name), not a mismatch.
    queue: Inbox  # type: ignore[assignment]
    writable: Flag  # type: ignore[assignment]
    response: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()
        self.writable = Flag()
        self.writable.set()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if getattr(self, "scope", None) is not None:
            # The ASGI scope is a TypedDict in uvicorn's typing; ASGI lets servers add extension keys.
            self.scope[FORCE_CLOSE_SCOPE_KEY] = self.force_close  # type: ignore[literal-required]
            self.scope[SEND_TEXTS_SCOPE_KEY] = self.send_texts  # type: ignore[literal-required]

    def send_receive_event_to_app(self) -> None:
        super().send_receive_event_to_app()
        # uvicorn paused reading until the app takes this frame: read on while little waits.
        if self.read_paused and self.queue.bytes < INBOX_MAX_BYTES:
            self.read_paused = False
            self.transport.resume_reading()

    async def send_texts(self, frames: list[bytes]) -> None:
        """Text frames (UTF-8 already) in one write, as uvicorn's send writes one: after write flow
        control lets it, on an accepted socket not closing; ClientDisconnected otherwise."""
        await self.writable.wait()
        if self.disconnected or self.close_sent or not self.handshake_complete or self.initial_response is not None:
            raise ClientDisconnected()
        try:
            for frame in frames:
                self.conn.send_text(frame)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    def force_close(self, code: int, grace: float) -> None:
        """Close frame now, past anything waiting; the connection cut `grace` s later at the latest."""
        if self.close_sent or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": ""})
        self.conn.send_close(code, "")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:  # read the client's close answer
            self.read_paused = False
            self.transport.resume_reading()
        self.writable.set()  # a send still waiting fails at once (close_sent) instead of forever
        self.close_timer = self.loop.call_later(grace, self.transport.abort)

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # A refusal by design (403 to a foreign Origin, 429 past a cap) answered in full: for
            # uvicorn that is "no handshake", and it would log an error and try a 500 after it.
            self.handshake_complete = True
        if message["type"] == "websocket.accept" and self.handshake_complete:
            request, self.request, self.response = self.request, None, None
            # websockets' parser keeps the request object itself (a local of its suspended
            # parse generator): empty its headers, which nothing reads any more.
            request.headers.clear()
