"""What one client can make a gateway hold, and who may open a socket at all (issue 11).

Bodies of HTTP requests are bounded; a socket that reads nothing is closed once what waits for
it passes a byte bound (before, 20,000 frames: gigabytes of history pages); browsers from other
sites are refused; sockets that never log in are closed; per-address and per-user caps; and
presence that Redis lost is written back without anyone being told a false "online".
"""
import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared.devstack import Stack, free_port
from shared.settings import Settings
from tests.support.client import PASSWORD, Client, befriend, log_in_again, new_user
from tests.support.infra import wait_until_ready

# The bounded gateway below: small enough that a test reaches every bound quickly.
QUEUED_BYTES = 256 * 1024
LOGIN_DEADLINE = 1.5
UNBOUND_PER_ADDRESS = 3
SOCKETS_PER_USER = 2


@pytest.fixture(scope="module")
async def bounded(stack: Stack) -> AsyncIterator[int]:
    """One more gateway on the shared services, with low bounds of its own."""
    port = free_port()
    proc = stack.start_process("bounded", "gateway", {
        "PARLEY_GATEWAY_PORT": str(port),
        "PARLEY_OUTBOUND_QUEUE_MAX_BYTES": str(QUEUED_BYTES),
        "PARLEY_WS_LOGIN_DEADLINE_SECONDS": str(LOGIN_DEADLINE),
        "PARLEY_WS_MAX_UNBOUND_PER_ADDRESS": str(UNBOUND_PER_ADDRESS),
        "PARLEY_WS_MAX_SOCKETS_PER_USER": str(SOCKETS_PER_USER),
    })
    await wait_until_ready(port)
    yield port
    proc.stop()


async def slow_closes(port: int) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(r"^parley_gateway_slow_closes_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def raw_post(port: int, path: str, headers: dict[str, str], body_parts: list[bytes]) -> tuple[int, dict]:
    """POST over a bare TCP connection: send what is given, then read the answer (without
    waiting to send the rest of a body the server has refused)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode())
    for part in body_parts:
        writer.write(part)
        await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    body = rest.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), json.loads(body)


async def test_http_bodies_past_the_bound_are_refused_413_unread(port: int, settings: Settings) -> None:
    """Before: /auth/login read any body whole (three 200 MB bodies: +1.1 GB) and said bad_request."""
    limit = settings.http_max_body_bytes
    # Declared too large: answered before a byte of the body is sent.
    status, body = await raw_post(port, "/auth/login", {"content-length": str(200 * 1024 * 1024)}, [])
    assert (status, body["error"]["code"]) == (413, "too_large")
    # Streamed without a length: cut off as soon as it passes the bound.
    chunk = b" " * 4096
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 1)]
    status, body = await raw_post(port, "/auth/register", {"transfer-encoding": "chunked"}, parts)
    assert (status, body["error"]["code"]) == (413, "too_large")
    # A body within the bound is read as before.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        small = await http.post("/auth/login", json={"username": "nobody_here", "password": "wrong-password"})
    assert small.status_code == 401


async def test_a_socket_that_reads_nothing_is_closed_4008_and_resyncs(bounded: int, settings: Settings) -> None:
    """A client asks for many large history pages and reads none: once what waits for it passes
    the byte bound, the gateway drops it and closes with 4008; the client reconnects, loses nothing."""
    alice, bob = await new_user(bounded), await new_user(bounded)
    await befriend(alice, bob)
    text = "x" * 3990
    sent = [await alice.send_text(bob.user_id, f"{i:04d}{text}") for i in range(60)]
    conversation_id = sent[0]["conversation_id"]
    await bob.close()
    closes_before = await slow_closes(bounded)

    # A reader that stops reading: a tiny receive queue, and nothing read until the end.
    ws = await websockets.connect(f"ws://127.0.0.1:{bounded}/ws", max_size=None, max_queue=1)
    await ws.send(json.dumps({"type": "auth.resume", "id": "r", "data": {"token": bob.token}}))
    for i in range(60):  # 60 pages of ~240 KB: far more than the socket buffers and the bound
        await ws.send(json.dumps({"type": "history.fetch", "id": f"h{i}", "data": {"conversation_id": conversation_id, "limit": 60}}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while await slow_closes(bounded) <= closes_before:
        assert loop.time() < deadline, "the gateway kept buffering for a socket that reads nothing"
        await asyncio.sleep(0.2)
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4008

    again = await log_in_again(bob, bounded)
    await again.wait_synced()
    page = await again.call("history.fetch", {"conversation_id": conversation_id, "limit": 60})
    assert [m["seq"] for m in page["messages"]] == [r["seq"] for r in sent]
    await alice.close()
    await again.close()


async def test_a_browser_on_another_site_may_not_open_a_socket(port: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{port}/ws", origin="https://evil.example")
    assert refused.value.response.status_code == 403
    # The gateway's own page, and clients that are not browsers (no Origin), are welcome.
    own = await websockets.connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}")
    await own.send(json.dumps({"type": "ping", "id": "p", "data": {}}))
    assert json.loads(await own.recv())["ok"] is True
    await own.close()


async def test_a_socket_that_never_logs_in_is_closed_at_its_deadline(bounded: int) -> None:
    ws = await websockets.connect(f"ws://127.0.0.1:{bounded}/ws")
    await ws.send(json.dumps({"type": "ping", "id": "p", "data": {}}))
    assert json.loads(await ws.recv())["ok"] is True
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), LOGIN_DEADLINE + 5)
    assert ws.close_code == 4408


async def test_sockets_not_logged_in_are_capped_per_address(bounded: int) -> None:
    held = [await websockets.connect(f"ws://127.0.0.1:{bounded}/ws") for _ in range(UNBOUND_PER_ADDRESS)]
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{bounded}/ws")
    assert refused.value.response.status_code == 429
    await held[0].close()
    await asyncio.sleep(0.3)
    again = await websockets.connect(f"ws://127.0.0.1:{bounded}/ws")  # one freed: one more allowed
    for ws in [*held[1:], again]:
        await ws.close()


async def test_one_user_holds_a_bounded_number_of_sockets(bounded: int) -> None:
    first = await new_user(bounded, "phone")
    second = await log_in_again(first, bounded, "laptop")
    third = await Client(bounded).connect()
    third.username, third.user_id = first.username, first.user_id
    reply = await third.frame({"type": "auth.login", "id": "l", "data": {"username": first.username, "password": PASSWORD}})
    assert reply["ok"] is False and reply["error"]["code"] == "rate_limited"
    await second.close()
    await asyncio.sleep(0.3)
    assert (await third.login("tablet"))["user_id"] == first.user_id
    for client in (first, third):
        await client.close()


async def test_presence_lost_by_redis_comes_back_at_once_without_a_false_online(port: int, settings: Settings) -> None:
    """Redis restarted empty: the gateways write their sockets back within a second, so live
    delivery goes on, and no friend is told "online" about someone who never went away."""
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await asyncio.sleep(0.5)
    while not alice.pushes.empty():  # what came before the loss
        alice.pushes.get_nowait()
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        async for key in redis.scan_iter(f"{settings.namespace}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()
    await asyncio.sleep(2.5)  # past the gateways' check (every second), short of the presence expiry
    sent = await alice.send_text(bob.user_id, f"after the loss {secrets.token_hex(3)}")
    pushed = await bob.next_push("message.new", timeout=5)
    assert pushed["seq"] == sent["seq"]
    await asyncio.sleep(1.5)  # a heartbeat or two more
    seen = [alice.pushes.get_nowait()["type"] for _ in range(alice.pushes.qsize())]
    assert "presence" not in seen, seen
    for client in (alice, bob):
        await client.close()
