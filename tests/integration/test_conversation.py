"""End to end through real WebSockets: two users register, befriend, chat, see presence."""
import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from deploy.local.devstack import Stack, free_port
from tests.support.client import Client, befriend, http_post, new_user, send_texts
from tests.support.infra import wait_until_ready
from tests.support.waiting import eventually


async def test_two_users_befriend_and_chat_both_ways(port: int, other_port: int) -> None:
    alice = await new_user(port)
    bob = await new_user(other_port)  # on the other gateway: delivery crosses instances
    await befriend(alice, bob)

    sent = []
    for i in range(5):
        sent.append(await alice.send_text(bob.user_id, f"a{i}"))
        sent.append(await bob.send_text(alice.user_id, f"b{i}"))
    conversation_id = sent[0]["conversation_id"]
    assert all(r["conversation_id"] == conversation_id for r in sent)
    assert [r["seq"] for r in sent] == list(range(1, 11))

    await eventually(
        lambda: len(bob.inbox[conversation_id]) == 5 and len(alice.inbox[conversation_id]) == 5,
        "each side's five messages pushed live",
    )
    # Each sees the other's messages live, with the seq the sender was given.
    assert [m["text"] for m in bob.inbox[conversation_id].values()] == [f"a{i}" for i in range(5)]
    assert sorted(bob.inbox[conversation_id]) == [1, 3, 5, 7, 9]
    assert sorted(alice.inbox[conversation_id]) == [2, 4, 6, 8, 10]
    first = bob.inbox[conversation_id][1]
    assert first["from_user_id"] == alice.user_id and first["to"] == {"user_id": bob.user_id}
    assert first["message_id"] == sent[0]["message_id"] and first["sent_at"] == sent[0]["sent_at"]
    assert bob.duplicates == 0

    history = await bob.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["text"] for m in history["messages"]] == [t for i in range(5) for t in (f"a{i}", f"b{i}")]
    assert history["has_more"] is False
    for client in (alice, bob):
        await client.close()


async def test_history_pages_backwards(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    replies = await send_texts(alice, bob.user_id, [f"m{i}" for i in range(1, 126)])
    assert [r["seq"] for r in replies] == list(range(1, 126))
    conversation_id = replies[0]["conversation_id"]

    newest = await bob.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["seq"] for m in newest["messages"]] == list(range(76, 126))
    assert newest["has_more"] is True
    older = await bob.call("history.fetch", {"conversation_id": conversation_id, "before_seq": 76, "limit": 70})
    assert [m["seq"] for m in older["messages"]] == list(range(6, 76))
    assert older["has_more"] is True
    oldest = await bob.call("history.fetch", {"conversation_id": conversation_id, "before_seq": 6, "limit": 200})
    assert [m["text"] for m in oldest["messages"]] == ["m1", "m2", "m3", "m4", "m5"]
    assert oldest["has_more"] is False
    for client in (alice, bob):
        await client.close()


async def test_presence_pushes_to_friends_and_friends_list(port: int, other_port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    listed = await alice.call("friends.list")
    assert [(f["user_id"], f["online"]) for f in listed["friends"]] == [(bob.user_id, True)]

    await bob.close()  # a clean close: PROTOCOL.md promises friends hear within 5 s
    went = await alice.next_push("presence", timeout=5)
    assert went["user_id"] == bob.user_id and went["online"] is False and went["last_seen"]
    listed = await alice.call("friends.list")
    assert listed["friends"][0]["online"] is False
    assert listed["friends"][0]["last_seen"] == went["last_seen"]

    # Back on the other gateway, with two devices: one push for the first, none for the second.
    bob_phone = await Client(other_port).connect()
    bob_phone.username = bob.username
    await bob_phone.login("phone")
    came = await alice.next_push("presence", timeout=15)
    assert came == {"user_id": bob.user_id, "online": True, "last_seen": None}
    bob_laptop = await Client(port).connect()
    bob_laptop.username = bob.username
    await bob_laptop.login("laptop")
    await bob_phone.close()
    assert await alice.no_push("presence", within=1.5)  # the laptop is still online
    await bob_laptop.close()  # the last device, closed cleanly: within 5 s again
    assert (await alice.next_push("presence", timeout=5))["online"] is False
    await alice.close()


async def test_friend_requests_and_lists(port: int) -> None:
    alice, bob, carol = await new_user(port), await new_user(port), await new_user(port)
    await alice.call("friends.request", {"user_id": bob.user_id})
    pushed = await bob.next_push("friend.request")
    assert pushed["user"] == {
        "user_id": alice.user_id, "username": alice.username, "display_name": alice.username,
        "avatar_url": None,
    }
    await carol.call("friends.request", {"user_id": alice.user_id})

    mine = await alice.call("friends.list")
    assert mine["friends"] == []
    assert [u["user_id"] for u in mine["outgoing"]] == [bob.user_id]
    assert [u["user_id"] for u in mine["incoming"]] == [carol.user_id]

    await alice.call("friends.remove", {"user_id": carol.user_id})  # declines Carol
    await bob.call("friends.accept", {"user_id": alice.user_id})
    accepted = await alice.next_push("friend.accepted")
    assert accepted["user"]["user_id"] == bob.user_id
    mine = await alice.call("friends.list")
    assert [f["username"] for f in mine["friends"]] == [bob.username]
    assert mine["incoming"] == [] and mine["outgoing"] == []
    assert (await carol.call("friends.list"))["outgoing"] == []

    await bob.call("friends.remove", {"user_id": alice.user_id})
    assert (await alice.call("friends.list"))["friends"] == []
    with pytest.raises(Exception) as refused:
        await alice.send_text(bob.user_id, "still there?")
    assert refused.value.code == "forbidden"
    for client in (alice, bob, carol):
        await client.close()


async def test_user_search_by_prefix(port: int) -> None:
    searcher = await new_user(port)
    target = Client(port)
    await target.connect()
    await target.register(f"zed_{searcher.user_id[-6:]}", display_name="Quentin Quux")
    by_name = await searcher.call("users.search", {"query": f"ZED_{searcher.user_id[-6:]}"})
    assert [u["username"] for u in by_name["users"]] == [target.username]
    by_display = await searcher.call("users.search", {"query": "quentin q"})
    assert target.user_id in [u["user_id"] for u in by_display["users"]]
    assert (await searcher.call("users.search", {"query": "uentin"}))["users"] == []
    for client in (searcher, target):
        await client.close()


async def test_http_register_login_and_readiness(port: int) -> None:
    name = f"http_user_{secrets.token_hex(4)}"  # the test's own: it may run again on the same stack
    created = await http_post(port, "/auth/register", {"username": name.capitalize(), "password": "password123"})
    assert created.status_code == 201
    assert created.json()["username"] == name
    login = await http_post(port, "/auth/login", {"username": name.upper(), "password": "password123"})
    assert login.status_code == 200 and login.json()["user_id"] == created.json()["user_id"]
    # The token works on a socket.
    client = await Client(port).connect()
    resumed = await client.call("auth.resume", {"token": login.json()["token"]})
    assert resumed["user_id"] == created.json()["user_id"]
    assert await client.wait_synced() == 0
    await client.close()

    taken = await http_post(port, "/auth/register", {"username": name, "password": "password123"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    wrong = await http_post(port, "/auth/login", {"username": name, "password": "password124"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    bad = await http_post(port, "/auth/register", {"username": "x", "password": "password123"})
    assert bad.status_code == 400 and "username" in bad.json()["error"]["message"]
    garbage = await http_post(port, "/auth/login", b"{not json")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "bad_request"

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {k: "ok" for k in ("redis", "rabbitmq", "auth", "chat", "files", "calls", "push")}
        assert (await http.get("/healthz")).status_code == 200
        assert "parley_gateway_connections" in (await http.get("/metrics")).text


async def open_sockets(port: int) -> float:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        text = (await http.get("/metrics")).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith("parley_gateway_connections ")))


@pytest.fixture
async def quiet_port(stack: Stack) -> AsyncIterator[int]:
    """A gateway of its own on the session stack: no socket of an earlier test, still being let
    go, moves its open-socket gauge while this test counts."""
    port = free_port()
    proc = stack.start_process("gateway-quiet", "gateway", {"PARLEY_GATEWAY_PORT": str(port)})
    try:
        await wait_until_ready(port)
        yield port
    finally:
        await asyncio.to_thread(proc.stop)
        stack.procs.pop("gateway-quiet", None)


async def test_a_closed_socket_is_let_go(quiet_port: int) -> None:
    """The gateway forgets sockets that closed (bound or not): none is kept for its lifetime."""
    port = quiet_port
    before = await open_sockets(port)
    bound = await new_user(port)
    bare = await Client(port).connect()
    assert (await bare.reply("ping"))["ok"]
    assert await open_sockets(port) == before + 2
    await bound.close()
    await bare.close()

    async def let_go() -> bool:
        return await open_sockets(port) == before

    await eventually(let_go, f"the gauge back at {before} once both sockets closed")
