"""The gateway's WebSocket protocol for uvicorn: uvicorn's websockets-sansio, lighter when idle.

An idle socket costs what its objects hold for the socket's whole life, and uvicorn's protocol
holds more than it uses: an asyncio.Queue for received messages (four empty deques, ~3.7 KiB),
an asyncio.Event for write flow control (one empty deque, ~1.1 KiB), and the upgrade request
and response (parsed headers: ~3 KiB for a bare client, more for a browser's cookies and user
agent) that nothing reads after the handshake. This subclass swaps the first two for
equivalents that allocate only while someone waits, and lets go of the last once the
handshake is sent (the ASGI scope keeps its own copy of the request headers for the app).
Frames, close codes, keepalive pings and size limits are uvicorn's own, unchanged.

It leans on uvicorn's internals (the attributes `queue`, `writable`, `request`, `response` of
WebSocketsSansIOProtocol, uvicorn 0.54); tests/unit/test_gateway_sockets.py runs it on the
installed uvicorn, so an upgrade that changes them fails there first.
"""
import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class Inbox:
    """What uvicorn asks of its receive queue (put_nowait, get, empty), for its one reader.

    The ASGI app is the only reader (one `receive()` at a time, as the ASGI spec has it); a
    second concurrent reader is refused rather than left waiting forever.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
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
        return self._items.pop(0)


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
    response: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            request, self.request, self.response = self.request, None, None
            # websockets' parser keeps the request object itself (a local of its suspended
            # parse generator): empty its headers, which nothing reads any more.
            request.headers.clear()
