"""Every bad input gets its documented code, changes nothing, and the socket stays usable."""
import asyncio
import json

import pytest

from shared.settings import Settings
from shared.tokens import TokenCodec
from tests.support.client import Client, befriend, new_user


async def still_open(client: Client) -> bool:
    return (await client.reply("ping"))["ok"] is True


async def test_broken_frames_are_answered_and_the_socket_survives(port: int) -> None:
    client = await Client(port).connect()

    await client.send_raw("{this is not json")
    unmatched = await client.next_unmatched_reply()
    assert unmatched["ok"] is False and unmatched["id"] is None and unmatched["error"]["code"] == "bad_request"

    await client.send_raw("[1, 2, 3]")
    assert (await client.next_unmatched_reply())["error"]["code"] == "bad_request"

    await client.ws.send(b"\x00\x01binary")
    assert (await client.next_unmatched_reply())["error"]["code"] == "bad_request"

    no_id = {"type": "ping", "data": {}}
    await client.send_raw(json.dumps(no_id))
    reply = await client.next_unmatched_reply()
    assert reply["error"]["code"] == "bad_request" and "id" in reply["error"]["message"]

    unknown = await client.frame({"type": "message.teleport", "id": "u1", "data": {}})
    assert unknown["id"] == "u1" and unknown["error"]["code"] == "bad_request"
    assert "message.teleport" in unknown["error"]["message"]

    huge = await client.frame({"type": "ping", "id": "big", "data": {"pad": "x" * 70_000}})
    assert huge["id"] == "big" and huge["error"]["code"] == "too_large"
    assert await still_open(client)
    await client.close()


async def test_only_session_operations_before_login(port: int) -> None:
    client = await Client(port).connect()
    for op, data in [("friends.list", {}), ("message.send", {"bogus": 1}), ("users.search", {"query": "a"}),
                     ("history.fetch", {}), ("auth.logout", {})]:
        reply = await client.reply(op, data)
        assert reply["error"]["code"] == "unauthorized", op
    assert await still_open(client)
    await client.close()


async def test_registration_and_login_errors(port: int) -> None:
    client = await Client(port).connect()
    await client.register("Case_Folded")
    assert client.username == "case_folded"
    for data, field in [
        ({"username": "ab", "password": "password1"}, "data.username"),
        ({"username": "has space", "password": "password1"}, "data.username"),
        ({"username": "x" * 33, "password": "password1"}, "data.username"),
        ({"username": "okname", "password": "short"}, "data.password"),
        ({"username": "okname", "password": "p" * 129}, "data.password"),
        ({"username": "okname"}, "data.password"),
        ({"username": "okname", "password": "password1", "admin": True}, "data.admin"),
    ]:
        reply = await client.reply("auth.register", data)
        assert reply["error"]["code"] == "bad_request" and field in reply["error"]["message"], data
    taken = await client.reply("auth.register", {"username": "CASE_folded", "password": "password1"})
    assert taken["error"]["code"] == "conflict"

    wrong = await client.reply("auth.login", {"username": "case_folded", "password": "not the password"})
    nobody = await client.reply("auth.login", {"username": "nobody_at_all", "password": "not the password"})
    assert wrong["error"] == nobody["error"]
    assert wrong["error"]["code"] == "unauthorized"
    assert (await client.reply("friends.list"))["error"]["code"] == "unauthorized"  # still not bound
    await client.close()


async def test_message_errors_store_nothing(port: int) -> None:
    alice, bob, stranger = await new_user(port), await new_user(port), await new_user(port)
    await befriend(alice, bob)
    to_bob = {"to": {"user_id": bob.user_id}, "client_msg_id": "c1"}
    cases = [
        ({"client_msg_id": "c1", "text": "hi"}, "bad_request", "data.to"),
        ({"to": {"user_id": bob.user_id}, "text": "hi"}, "bad_request", "data.client_msg_id"),
        ({**to_bob, "client_msg_id": "", "text": "hi"}, "bad_request", "data.client_msg_id"),
        ({**to_bob, "client_msg_id": "c" * 65, "text": "hi"}, "bad_request", "data.client_msg_id"),
        ({**to_bob}, "bad_request", "text"),
        ({**to_bob, "text": ""}, "bad_request", "data.text"),
        ({**to_bob, "text": "x" * 4001}, "bad_request", "data.text"),
        ({**to_bob, "text": "hi", "ttl_seconds": 0}, "bad_request", "data.ttl_seconds"),
        ({**to_bob, "text": "hi", "ttl_seconds": 604801}, "bad_request", "data.ttl_seconds"),
        ({**to_bob, "text": 5}, "bad_request", "data.text"),
        ({"to": {"user_id": stranger.user_id}, "client_msg_id": "c1", "text": "hi"}, "forbidden", ""),
        ({"to": {"user_id": alice.user_id}, "client_msg_id": "c1", "text": "hi"}, "bad_request", "data.to.user_id"),
    ]
    for data, code, field in cases:
        reply = await alice.reply("message.send", data)
        assert reply["ok"] is False and reply["error"]["code"] == code, (data, reply)
        assert field in reply["error"]["message"], (data, reply)

    # Nothing was stored or remembered: the same client_msg_id now stores seq 1.
    sent = await alice.call("message.send", {**to_bob, "text": "finally"})
    assert sent["seq"] == 1
    assert await stranger.no_push("message.new", within=0.5)
    assert (await stranger.reply("history.fetch", {"conversation_id": sent["conversation_id"]}))["error"]["code"] == "forbidden"
    assert (await stranger.reply("message.ack", {"conversation_id": sent["conversation_id"], "seq": 1}))["error"]["code"] == "forbidden"
    beyond = await bob.reply("message.ack", {"conversation_id": sent["conversation_id"], "seq": 2})
    assert beyond["error"]["code"] == "bad_request" and "data.seq" in beyond["error"]["message"]
    over = await bob.reply("history.fetch", {"conversation_id": sent["conversation_id"], "limit": 201})
    assert over["error"]["code"] == "bad_request" and "data.limit" in over["error"]["message"]
    history = await bob.call("history.fetch", {"conversation_id": sent["conversation_id"]})
    assert [m["text"] for m in history["messages"]] == ["finally"]

    for op, data, code in [
        ("friends.request", {"user_id": alice.user_id}, "bad_request"),
        ("friends.request", {"user_id": "u_nobody"}, "not_found"),
        ("friends.request", {"user_id": bob.user_id}, "conflict"),
        ("friends.accept", {"user_id": stranger.user_id}, "not_found"),
        ("friends.remove", {"user_id": stranger.user_id}, "not_found"),
        ("friends.request", {}, "bad_request"),
    ]:
        assert (await alice.reply(op, data))["error"]["code"] == code, (op, data)
    for client in (alice, bob, stranger):
        await client.close()


async def test_expired_tampered_and_revoked_tokens(port: int, other_port: int, settings: Settings) -> None:
    client = await Client(port).connect()
    expired, _ = TokenCodec(settings.jwt_secret, -60).issue("u_someone", "default")
    reply = await client.reply("auth.resume", {"token": expired})
    assert reply["error"]["code"] == "unauthorized" and "expired" in reply["error"]["message"]
    forged, _ = TokenCodec("not the server's secret at all, no", 3600).issue("u_someone", "default")
    assert (await client.reply("auth.resume", {"token": forged}))["error"]["code"] == "unauthorized"
    assert (await client.reply("auth.resume", {"token": "garbage"}))["error"]["code"] == "unauthorized"
    await client.close()

    user = await new_user(port)
    elsewhere = await Client(other_port).connect()
    await elsewhere.call("auth.resume", {"token": user.token, "device_id": "tablet"})
    await elsewhere.wait_synced()

    assert await user.call("auth.logout") == {}
    assert (await user.reply("friends.list"))["error"]["code"] == "unauthorized"
    # The token stops working everywhere: new resumes fail, and the other socket is closed.
    fresh = await Client(port).connect()
    revoked = await fresh.reply("auth.resume", {"token": user.token})
    assert revoked["error"]["code"] == "unauthorized" and "revoked" in revoked["error"]["message"]
    await asyncio.wait_for(elsewhere.closed.wait(), timeout=5)
    assert elsewhere.ws.close_code == 4401
    for c in (user, fresh):
        await c.close()


@pytest.mark.parametrize("limit", [0, -1, "ten"])
async def test_history_limit_must_be_1_to_200(port: int, limit: object) -> None:
    client = await new_user(port)
    reply = await client.reply("history.fetch", {"conversation_id": "d_x", "limit": limit})
    assert reply["error"]["code"] == "bad_request" and "data.limit" in reply["error"]["message"]
    await client.close()
