"""What an idle socket holds, and that holding less changed nothing a client sees.

services/gateway/connections.py: the writer task and its queue exist only while frames wait.
services/gateway/wsprotocol.py: uvicorn's websockets-sansio protocol with a lighter receive
queue and write flag, the handshake let go once sent; run here on a real uvicorn, through
GatewayApp's direct /ws route, against a real `websockets` client.
"""
import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.client import ClientProtocol
from websockets.uri import parse_uri
from fastapi.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway.app import GatewayApp
from services.gateway.connections import CLOSE_REPLACED, CLOSE_TOO_SLOW, SEND_TEXTS_SCOPE_KEY, Connection
from services.gateway.wsprotocol import Flag, GatewayWebSocketProtocol, Inbox
from tests.support.waiting import eventually


@dataclass
class Peer:
    """Stands in for the socket under a Connection: records what is written, can be slowed or gone."""

    texts: list[str] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set: each send waits for it
    gone: bool = False

    async def send_text(self, text: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.gone:
            raise RuntimeError("peer went away")
        self.texts.append(text)

    async def close(self, code: int) -> None:
        self.closes.append(code)


def connection(peer: Peer, max_queued_bytes: int = 100) -> Connection:
    return Connection("c1", peer, max_queued_bytes)  # type: ignore[arg-type]


async def test_an_idle_socket_holds_no_writer_and_no_queue():
    peer = Peer()
    conn = connection(peer)
    assert conn.writer is None and conn.outbound is None
    for i in range(3):
        conn.send(f"f{i}".encode())
    assert conn.writer is not None
    await conn.wait_written()
    assert peer.texts == ["f0", "f1", "f2"]
    assert conn.writer is None and conn.outbound is None  # drained: back to holding nothing
    conn.send(b"f3")
    await conn.wait_written()
    assert peer.texts == ["f0", "f1", "f2", "f3"] and peer.closes == []


async def test_close_comes_after_what_was_queued_and_later_frames_are_dropped():
    peer = Peer(gate=asyncio.Event())
    conn = connection(peer)
    conn.send(b"a")
    conn.send(b"b")
    conn.close(CLOSE_REPLACED)
    conn.close(1000)  # idempotent: the first code stands
    conn.send(b"c")
    peer.gate.set()
    await conn.wait_written()
    assert peer.texts == ["a", "b"] and peer.closes == [CLOSE_REPLACED]
    conn.close(1000)
    await conn.wait_written()
    assert peer.closes == [CLOSE_REPLACED]


async def test_a_socket_too_far_behind_in_bytes_is_closed_too_slow_and_its_queue_dropped():
    peer = Peer(gate=asyncio.Event())
    conn = connection(peer, max_queued_bytes=10)
    conn.send(b"1")
    await asyncio.sleep(0)  # the writer takes "1" and waits on the peer
    conn.send(b"2222")
    conn.send(b"333333")
    assert not conn.closed and conn.queued_bytes == 10
    conn.send(b"4")  # ten bytes already wait: too slow
    assert conn.closed and conn.close_code == CLOSE_TOO_SLOW and conn.queued_bytes == 0
    peer.gate.set()
    await conn.wait_written()
    # What waited is dropped (the client resyncs); only the frame already being written went out.
    assert peer.texts == ["1"] and peer.closes == [CLOSE_TOO_SLOW]


async def test_live_pushes_held_back_during_sync_count_against_the_same_bound():
    peer = Peer()
    conn = connection(peer, max_queued_bytes=8)
    conn.syncing = True
    conn.send_live(b"live")
    conn.send(b"sync")
    assert not conn.closed and conn.queued_bytes == 8
    conn.send_live(b"x")
    assert conn.closed and conn.close_code == CLOSE_TOO_SLOW


async def test_a_peer_that_went_away_closes_the_connection_without_a_close_frame():
    peer = Peer(gone=True)
    conn = connection(peer)
    conn.send(b"x")
    await conn.wait_written()
    assert conn.closed and peer.closes == []
    conn.send(b"y")
    assert conn.writer is None


async def test_inbox_hands_over_in_order_to_its_one_reader():
    inbox = Inbox()
    inbox.put_nowait({"type": "websocket.connect"})
    assert not inbox.empty() and inbox.qsize() == 1
    assert await inbox.get() == {"type": "websocket.connect"}
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await inbox.get()  # a second reader at once
    inbox.put_nowait({"type": "websocket.receive", "text": "1"})
    inbox.put_nowait({"type": "websocket.receive", "text": "2"})
    assert (await reader)["text"] == "1"
    assert (await inbox.get())["text"] == "2"
    cancelled = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert (await inbox.get())["code"] == 1000  # nothing lost to the cancelled reader


async def test_flag_wakes_every_waiter_when_set():
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait() is True
    flag.clear()
    assert not flag.is_set()


@dataclass
class EchoGateway:
    """Stands in for Gateway.serve_socket: echoes text, closes on request, records disconnects."""

    disconnects: list[int] = field(default_factory=list)

    async def serve_socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text.startswith("close "):
                    await websocket.close(int(text.split()[1]))
                    return
                await websocket.send_text(text)
        except WebSocketDisconnect as exc:
            self.disconnects.append(exc.code)


@asynccontextmanager
async def served(gateway: Any, **options: Any) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """A real uvicorn on a socket bound here first: handed a port number instead, uvicorn binds
    it itself and exits the process (SystemExit) if another process took the port meanwhile."""
    app = GatewayApp()
    app.gateway = gateway

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("alive")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, ws=GatewayWebSocketProtocol, lifespan="off", log_config=None, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await eventually(lambda: server.started or task.done(), "uvicorn started")
        if task.done():
            task.result()  # its failure, if it failed
            raise AssertionError("uvicorn stopped before it started")
        yield f"127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task
        listener.close()


async def test_the_gateway_protocol_speaks_websocket_as_uvicorn_does():
    gateway = EchoGateway()
    async with served(gateway, ws_max_size=1024, ws_per_message_deflate=False) as (address, server):
        async with websockets.connect(f"ws://{address}/ws") as ws:  # offers permessage-deflate
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            texts = [f"message {i}" for i in range(50)]
            for text in texts:
                await ws.send(text)
            assert [await ws.recv() for _ in texts] == texts
            protocols = [p for p in server.server_state.connections if isinstance(p, GatewayWebSocketProtocol)]
            assert len(protocols) == 1 and protocols[0].request is None and protocols[0].response is None

        async with websockets.connect(f"ws://{address}/ws") as ws:
            await ws.send("close 4009")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4009

        async with websockets.connect(f"ws://{address}/ws") as ws:
            await ws.send("x" * 2048)  # over ws_max_size
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1009

        async with websockets.connect(f"ws://{address}/ws") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.close(1000)
        await eventually(lambda: 1000 in gateway.disconnects, "the app told of the client's close (1000)")

        async with httpx.AsyncClient() as http:  # HTTP still takes FastAPI's whole stack
            assert (await http.get(f"http://{address}/healthz")).text == "alive"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://{address}/elsewhere")
        assert refused.value.response.status_code == 403


@dataclass
class RefusingGateway:
    """Refuses every upgrade with an HTTP status and a body, as the gateway refuses a foreign Origin."""

    async def serve_socket(self, websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse('{"error": "forbidden"}', status_code=403))


async def test_a_refused_upgrade_is_answered_and_logs_no_error(caplog):
    """Issue 29: every foreign-Origin socket the gateway refused by design also logged
    `"level": "error"` "ASGI callable returned without completing handshake" (uvicorn counts a
    denial response as no handshake)."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    async with served(RefusingGateway()) as (address, _):
        for _ in range(3):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://{address}/ws")
            assert refused.value.response.status_code == 403
            assert refused.value.response.body == b'{"error": "forbidden"}'
    errors = [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn") and r.levelno >= logging.ERROR]
    assert errors == []


async def test_per_message_deflate_is_negotiated_when_turned_on():
    async with (
        served(EchoGateway(), ws_per_message_deflate=True) as (address, _),
        websockets.connect(f"ws://{address}/ws") as ws,
    ):
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await ws.send("compressed")
        assert await ws.recv() == "compressed"


@dataclass
class BurstGateway:
    """Queues as many frames as the client asks for in one go, counting the writes they take."""

    writes: list[int] = field(default_factory=list)  # frames per write

    async def serve_socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        send_texts = websocket.scope[SEND_TEXTS_SCOPE_KEY]

        async def counted(frames: list[bytes]) -> None:
            self.writes.append(len(frames))
            await send_texts(frames)

        websocket.scope[SEND_TEXTS_SCOPE_KEY] = counted
        conn = Connection("c1", websocket, max_queued_bytes=1024 * 1024)
        count = int(await websocket.receive_text())
        for i in range(count):
            conn.send(f'{{"n": {i}, "text": "é {"x" * i}"}}'.encode())
        conn.close(1000)
        await conn.wait_written()


@pytest.mark.parametrize("deflate", [False, True])
async def test_frames_queued_in_one_turn_go_out_in_one_write_as_separate_frames(deflate):
    """Issue 26: the writer hands what waits to the protocol in one write (not an ASGI send per
    frame); the client still gets each frame on its own, in order, compressed or not."""
    gateway = BurstGateway()
    async with (
        served(gateway, ws_per_message_deflate=deflate) as (address, _),
        websockets.connect(f"ws://{address}/ws") as ws,
    ):
        await ws.send("40")
        received = [await ws.recv() for _ in range(40)]
    assert received == [f'{{"n": {i}, "text": "é {"x" * i}"}}' for i in range(40)]
    assert gateway.writes == [40]


@dataclass
class BusyGateway:
    """Takes the first frame, then takes nothing more (all its request slots busy)."""

    busy: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by the test once it is done: the server's shutdown waits for this handler to return.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve_socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        self.busy.set()
        await asyncio.wait_for(self.released.wait(), 30)


async def test_pongs_are_read_while_the_app_takes_no_frames():
    """uvicorn alone stops reading a socket until the app takes its last frame: a gateway whose
    requests all wait (a backend slow) then misses the client's pongs and its keepalive closes
    the socket with 1011. Here reading goes on, so control frames are answered."""
    gateway = BusyGateway()
    async with (
        served(gateway) as (address, _),
        websockets.connect(f"ws://{address}/ws", ping_interval=None) as ws,
    ):
        await ws.send("first")
        await asyncio.wait_for(gateway.busy.wait(), 5)
        for i in range(5):
            await ws.send(f"waiting {i}")  # frames the app does not take yet
        await asyncio.sleep(0.3)  # received (uvicorn alone would stop reading here)
        try:
            latency = await asyncio.wait_for(await ws.ping(), 5)
        finally:
            gateway.released.set()
        assert latency < 5


@dataclass
class FloodingGateway:
    """Sends a frame per millisecond to a client that reads none, until told to close it."""

    code: int = CLOSE_TOO_SLOW
    written: int = 0

    async def serve_socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        conn = Connection("c1", websocket, max_queued_bytes=1024 * 1024)
        payload = b"x" * 16384
        while not conn.closed:
            conn.send(payload)
            await asyncio.sleep(0.001)
        await conn.wait_written()


async def test_a_client_that_reads_nothing_is_closed_4008_at_once():
    """The client (a bare TCP socket, so that nothing reads for it) stops reading: once a MiB
    waits for it the socket is closed 4008, the close frame sent past what waited (uvicorn's own
    close would wait for the client to read first, i.e. forever)."""
    gateway = FloodingGateway()
    async with served(gateway) as (address, server):
        host, port = address.split(":")
        client = ClientProtocol(parse_uri(f"ws://{address}/ws"))
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            client.send_request(client.connect())
            writer.write(b"".join(client.data_to_send()))
            client.receive_data(await reader.readuntil(b"\r\n\r\n"))
            client.send_text(b"go")
            writer.write(b"".join(client.data_to_send()))

            def closing() -> GatewayWebSocketProtocol | None:
                protocols = [p for p in server.server_state.connections if isinstance(p, GatewayWebSocketProtocol)]
                return protocols[0] if protocols and protocols[0].close_sent else None

            # Read nothing meanwhile.
            await eventually(closing, "the gateway closing a client that reads nothing (it kept queueing)")
            while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):  # now read: the close frame is there
                client.receive_data(chunk)
                if client.close_rcvd is not None:
                    break
            assert client.close_rcvd is not None and client.close_rcvd.code == CLOSE_TOO_SLOW
        finally:
            writer.close()
