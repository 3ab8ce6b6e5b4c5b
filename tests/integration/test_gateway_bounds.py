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

from deploy.local.devstack import Stack, free_port
from shared.presence import Presence
from shared.settings import Settings
from tests.support.client import PASSWORD, Client, befriend, log_in_again, new_user
from tests.support.infra import wait_until_ready
from tests.support.waiting import eventually

# The bounded gateway below: small enough that a test reaches every bound quickly. The login
# deadline is wide enough for a loaded machine to register and log in (or be refused and log
# in again) well within it: the caps below are checked on sockets that must not be closed first.
QUEUED_BYTES = 256 * 1024
LOGIN_DEADLINE = 5.0
UNBOUND_PER_ADDRESS = 3
SOCKETS_PER_USER = 2


@pytest.fixture(scope="module")
async def bounded_gateway(stack: Stack) -> AsyncIterator[int]:
    """One more gateway on the shared services, with low bounds of its own."""
    port = free_port()
    proc = stack.start_process("bounded", "gateway", {
        "PARLEY_GATEWAY_PORT": str(port),
        "PARLEY_OUTBOUND_QUEUE_MAX_BYTES": str(QUEUED_BYTES),
        "PARLEY_WS_LOGIN_DEADLINE_SECONDS": str(LOGIN_DEADLINE),
        "PARLEY_WS_MAX_UNBOUND_PER_ADDRESS": str(UNBOUND_PER_ADDRESS),
        "PARLEY_WS_MAX_SOCKETS_PER_USER": str(SOCKETS_PER_USER),
    })
    try:
        await wait_until_ready(port)
        yield port
    finally:
        proc.stop()


@pytest.fixture
async def bounded(bounded_gateway: int) -> int:
    """The bounded gateway once it holds no socket of an earlier test: one the client closed is
    still counted (against the per-address and per-user caps) until the gateway has seen it go."""
    await holding(bounded_gateway, 0)
    return bounded_gateway


async def metric(port: int, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def slow_closes(port: int) -> float:
    return await metric(port, "parley_gateway_slow_closes_total")


async def holding(port: int, sockets: int) -> None:
    """Until the gateway holds exactly this many sockets (every one closed since is forgotten,
    and no longer counted against a cap)."""
    async def held() -> bool:
        return await metric(port, "parley_gateway_connections") == sockets

    await eventually(held, f"the gateway on {port} holding {sockets} socket(s)")


async def raw_post(port: int, path: str, headers: dict[str, str], body_parts: list[bytes]) -> tuple[int, dict]:
    """POST over a bare TCP connection: send what is given, then read the answer (without
    waiting to send the rest of a body the server has refused)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
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
    try:
        await ws.send(json.dumps({"type": "auth.resume", "id": "r", "data": {"token": bob.token}}))
        for i in range(60):  # 60 pages of ~240 KB: far more than the socket buffers and the bound
            await ws.send(json.dumps({"type": "history.fetch", "id": f"h{i}",
                                      "data": {"conversation_id": conversation_id, "limit": 60}}))

        async def dropped() -> bool:
            return await slow_closes(bounded) > closes_before

        await eventually(dropped, "the gateway dropping the socket that reads nothing", timeout=30)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4008
    finally:
        await ws.close()

    await holding(bounded, 1)  # alice's: the dropped socket is gone, not counted against bob
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
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}") as own:
        await own.send(json.dumps({"type": "ping", "id": "p", "data": {}}))
        assert json.loads(await asyncio.wait_for(own.recv(), 10))["ok"] is True


async def test_a_socket_that_never_logs_in_is_closed_at_its_deadline(bounded: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{bounded}/ws") as ws:
        await ws.send(json.dumps({"type": "ping", "id": "p", "data": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["ok"] is True
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), LOGIN_DEADLINE + 5)
        assert ws.close_code == 4408


async def test_sockets_not_logged_in_are_capped_per_address(bounded: int) -> None:
    url = f"ws://127.0.0.1:{bounded}/ws"
    held: list[websockets.ClientConnection] = []
    try:
        for _ in range(UNBOUND_PER_ADDRESS):
            held.append(await websockets.connect(url))
        with pytest.raises(InvalidStatus) as refused:
            held.append(await websockets.connect(url))  # (held, to be closed, if let in)
        assert refused.value.response.status_code == 429
        await held.pop(0).close()
        await holding(bounded, UNBOUND_PER_ADDRESS - 1)
        held.append(await websockets.connect(url))  # one freed: one more allowed
    finally:
        for ws in held:
            await ws.close()


async def test_one_user_holds_a_bounded_number_of_sockets(bounded: int) -> None:
    first = await new_user(bounded, "phone")
    second = await log_in_again(first, bounded, "laptop")
    third = await Client(bounded).connect()
    third.username, third.user_id = first.username, first.user_id
    reply = await third.frame({"type": "auth.login", "id": "l", "data": {"username": first.username, "password": PASSWORD}})
    assert reply["ok"] is False and reply["error"]["code"] == "rate_limited"
    await second.close()
    await holding(bounded, 2)  # first's and third's: second's is forgotten
    assert (await third.login("tablet"))["user_id"] == first.user_id
    for client in (first, third):
        await client.close()


async def test_presence_lost_by_redis_comes_back_at_once_without_a_false_online(port: int, settings: Settings) -> None:
    """Redis restarted empty: the gateways write their sockets back within a second, so live
    delivery goes on, and no friend is told "online" about someone who never went away."""
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)  # both online before they were friends: nothing to announce between them
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)  # as the services read it
    presence = Presence(redis, settings.namespace, settings.presence_ttl_seconds, settings.redis_buckets)
    try:
        # All at once, as a restart loses them: deleted one by one, a key written back meanwhile
        # (the gateways check every second) could be deleted again after its gateway's marker.
        keys = [key async for key in redis.scan_iter(f"{settings.namespace}:*")]
        await redis.delete(*keys)
        # Written back by bob's gateway at its next check (every second).
        [sock] = await eventually(lambda: presence.sockets_of([bob.user_id]), "bob's socket written back to Redis")
        entry = f"{bob.user_id}|{sock.member}"
        restored_until = await redis.zscore(presence.expiry_key(bob.user_id), entry)
        sent = await alice.send_text(bob.user_id, f"after the loss {secrets.token_hex(3)}")
        pushed = await bob.next_push("message.new", timeout=5)
        assert pushed["seq"] == sent["seq"]

        async def refreshed() -> bool:
            return (await redis.zscore(presence.expiry_key(bob.user_id), entry) or 0) > (restored_until or 0)

        # A heartbeat since the restore (it moves bob's expiry on): each heartbeat that could
        # have found bob's entry gone, taken him for swept and announced him, has run.
        await eventually(refreshed, "a heartbeat refreshing bob's socket after the restore")
    finally:
        await redis.aclose()
    assert await alice.no_push("presence", within=2), "alice was told of bob's presence: he never went away"
    for client in (alice, bob):
        await client.close()
