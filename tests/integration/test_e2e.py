"""End-to-end encryption, the server's part (docs/security.md), over real sockets: the key
directory (publish, devices, claim once, fallback, keys.low, keys.changed), encrypted direct
conversations (turned on, delivered whole live and by sync, plaintext and reactions refused,
edits), to-device messages stored until acknowledged, and a database with none of what was
said in it. Ciphertexts here are opaque stand-ins (tests/support/fake_olm.py); real Olm between
the clients is the clients' tests."""
import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.settings import Settings
from tests.integration.test_file_messages import download, upload
from tests.support.client import Client, befriend, log_in_again, new_user
from tests.support.fake_olm import FakeDevice, b64, envelope

MARKER = "plaintext-marker-" + secrets.token_hex(6)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Any]:
    """The stack's database, read directly."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    yield client[settings.mongo_db]
    await client.close()


async def code(client: Client, kind: str, data: dict[str, Any]) -> str:
    reply = await client.reply(kind, data)
    assert not reply["ok"], reply
    return str(reply["error"]["code"])


async def message_of(client: Client, kind: str, data: dict[str, Any]) -> str:
    reply = await client.reply(kind, data)
    assert not reply["ok"], reply
    return str(reply["error"]["message"])


def device_of(client: Client, device_id: str = "default") -> FakeDevice:
    assert client.user_id is not None
    return FakeDevice(client.user_id, device_id)


async def published(client: Client, device_id: str = "default", one_time: int = 0, fallback: bool = False) -> FakeDevice:
    device = device_of(client, device_id)
    await client.call("keys.publish", device.publish(one_time, fallback))
    return device


async def encrypted_pair(port: int) -> tuple[Client, Client, FakeDevice, FakeDevice, str]:
    """Alice and Bob, friends, each with published keys, in an encrypted conversation."""
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    alice_device, bob_device = await published(alice), await published(bob)
    reply = await alice.call("conversations.encrypt", {"to": {"user_id": bob.user_id}})
    return alice, bob, alice_device, bob_device, reply["conversation_id"]


def send_data(to: Client, encrypted: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"to": {"user_id": to.user_id}, "client_msg_id": secrets.token_hex(8), "encrypted": encrypted, **extra}


async def test_the_key_directory_hands_each_one_time_key_out_once_then_the_fallback(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    assert (await bob.call("keys.devices", {"user_ids": [alice.user_id]}))["devices"] == []  # none published
    device = device_of(alice)
    first = device.publish(one_time=3, fallback=True)
    assert (await alice.call("keys.publish", first)) == {"one_time_key_count": 3}
    (listed,) = (await bob.call("keys.devices", {"user_ids": [alice.user_id]}))["devices"]
    assert {k: listed[k] for k in ("user_id", "device_id", "identity_key", "signing_key", "signature")} == {
        "user_id": alice.user_id, "device_id": "default", **first["device_keys"]}
    target = {"devices": [{"user_id": alice.user_id, "device_id": "default"}]}
    claimed = [(await bob.call("keys.claim", target))["keys"][0] for _ in range(3)]
    assert sorted(k["key_id"] for k in claimed) == sorted(k["key_id"] for k in first["one_time_keys"])
    assert not any(k["fallback"] for k in claimed)
    assert (await alice.next_push("keys.low")) == {"one_time_key_count": 2}
    (fallback,) = (await bob.call("keys.claim", target))["keys"]
    assert fallback["fallback"] and fallback["key_id"] == first["fallback_key"]["key_id"]
    assert (await bob.call("keys.claim", {"devices": [{"user_id": alice.user_id, "device_id": "nosuch"}]}))["keys"] == []
    # Publishing the same keys again changes nothing; more one-time keys are added.
    assert (await alice.call("keys.publish", {"one_time_keys": device.one_time_keys(5)})) == {"one_time_key_count": 5}
    await asyncio.gather(alice.close(), bob.close())


async def test_bad_keys_are_refused_and_change_nothing(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    device = device_of(alice)
    keys = device.one_time_keys(2)
    assert await code(alice, "keys.publish", {"one_time_keys": keys}) == "bad_request"  # no device keys yet
    forged = device.publish()
    forged["device_keys"]["signature"] = b64(bytes(64))
    assert "data.device_keys.signature" in await message_of(alice, "keys.publish", forged)
    assert (await bob.call("keys.devices", {"user_ids": [alice.user_id]}))["devices"] == []
    await alice.call("keys.publish", device.publish() | {"one_time_keys": keys})
    other = FakeDevice(alice.user_id or "", "default")  # signed by another key
    assert "data.one_time_keys[0].signature" in await message_of(alice, "keys.publish", {"one_time_keys": other.one_time_keys(1)})
    reused = device.signed_key(key_id=keys[0]["key_id"])
    assert await code(alice, "keys.publish", {"one_time_keys": [reused]}) == "conflict"
    assert await code(alice, "keys.publish", {"one_time_keys": device.one_time_keys(101)}) == "bad_request"
    for _ in range(1, 3):
        await alice.call("keys.publish", {"one_time_keys": device.one_time_keys(99)})
    assert await code(alice, "keys.publish", {"one_time_keys": device.one_time_keys(1)}) == "conflict"  # 200 held
    assert await code(bob, "keys.devices", {"user_ids": ["u_nosuch"]}) == "not_found"
    assert await code(bob, "keys.claim", {"devices": []}) == "bad_request"
    await asyncio.gather(alice.close(), bob.close())


async def test_keys_changed_reaches_a_friend_and_my_other_devices(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    laptop = await log_in_again(alice, port, device_id="laptop")
    await laptop.wait_synced()
    phone = await published(alice)
    added = {"user_id": alice.user_id, "device_id": "default", "change": "added"}
    assert await bob.next_push("keys.changed") == added
    assert await laptop.next_push("keys.changed") == added
    assert await alice.no_push("keys.changed", within=0.3)  # the device that changed knows
    await alice.call("keys.publish", FakeDevice(phone.user_id, "default").publish())  # reinstalled
    assert (await bob.next_push("keys.changed"))["change"] == "replaced"
    assert (await laptop.next_push("keys.changed"))["change"] == "replaced"
    await alice.call("keys.remove", {})
    assert (await laptop.next_push("keys.changed"))["change"] == "removed"
    assert (await bob.call("keys.devices", {"user_ids": [alice.user_id]}))["devices"] == []
    await asyncio.gather(alice.close(), bob.close(), laptop.close())


async def test_encrypting_a_conversation_tells_both_sides_once(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    stranger = await new_user(port)
    assert await code(alice, "conversations.encrypt", {"to": {"user_id": bob.user_id}}) == "forbidden"
    await befriend(alice, bob)
    reply = await alice.call("conversations.encrypt", {"to": {"user_id": bob.user_id}})
    pushed = {"conversation_id": reply["conversation_id"], "by_user_id": alice.user_id,
              "encrypted_at": reply["encrypted_at"]}
    assert await bob.next_push("conversation.encrypted") == pushed
    assert await alice.next_push("conversation.encrypted") == pushed
    again = await bob.call("conversations.encrypt", {"to": {"user_id": alice.user_id}})
    assert again == reply and await bob.no_push("conversation.encrypted", within=0.3)
    (entry,) = (await bob.call("conversations.list"))["conversations"]
    assert entry["encrypted_at"] == reply["encrypted_at"]
    group = await alice.call("groups.create", {"name": "g", "member_ids": [bob.user_id]})
    assert await code(bob, "conversations.encrypt", {"to": {"group_id": group["group_id"]}}) == "forbidden"  # a member
    assert await code(alice, "conversations.encrypt", {"to": {"user_id": alice.user_id}}) == "bad_request"
    assert await code(stranger, "conversations.encrypt", {"to": {"user_id": bob.user_id}}) == "forbidden"
    await asyncio.gather(alice.close(), bob.close(), stranger.close())


async def test_an_encrypted_message_reaches_every_device_whole_live_and_by_sync(port: int) -> None:
    alice, bob, alice_device, _, conversation_id = await encrypted_pair(port)
    laptop = await log_in_again(alice, port, device_id="laptop")
    await laptop.wait_synced()
    await bob.close()  # offline: gets it by sync
    assert bob.user_id is not None and alice.user_id is not None
    sent_envelope = envelope(alice_device, (bob.user_id, "default"), (alice.user_id, "laptop"))
    sent = await alice.call("message.send", send_data(bob, sent_envelope))
    live = await laptop.next_push("message.new")
    assert live["encrypted"] == sent_envelope and "text" not in live
    back = await log_in_again(bob, port)
    await back.wait_synced()
    synced = back.inbox[conversation_id][sent["seq"]]
    assert synced["encrypted"] == sent_envelope and synced["message_id"] == sent["message_id"]
    (fetched,) = (await back.call("history.fetch", {"conversation_id": conversation_id}))["messages"]
    assert fetched["encrypted"] == sent_envelope
    (entry,) = (await back.call("conversations.list"))["conversations"]
    assert entry["last_message"]["encrypted"] == sent_envelope
    # A reply carries the id it answers and no quote; an edit replaces the envelope.
    answer = await back.call("message.send", send_data(alice, envelope(alice_device, (alice.user_id, "default")),
                                                      reply_to=sent["message_id"]))
    quoted = (await alice.next_push("message.new"))
    assert quoted["seq"] == answer["seq"] and quoted["reply_to"] == {"message_id": sent["message_id"],
                                                                      "from_user_id": alice.user_id}
    new_envelope = envelope(alice_device, (bob.user_id, "default"))
    edited = await alice.call("message.edit", {"message_id": sent["message_id"], "encrypted": new_envelope})
    assert (await back.next_push("message.edited")) == {
        "conversation_id": conversation_id, "message_id": sent["message_id"], "seq": sent["seq"],
        "encrypted": new_envelope, "edited_at": edited["edited_at"]}
    await asyncio.gather(alice.close(), back.close(), laptop.close())


async def test_plaintext_and_reactions_are_refused_in_an_encrypted_conversation(port: int) -> None:
    alice, bob, alice_device, _, conversation_id = await encrypted_pair(port)
    assert bob.user_id is not None
    sent = await alice.call("message.send", send_data(bob, envelope(alice_device, (bob.user_id, "default"))))
    plain = {"to": {"user_id": bob.user_id}, "client_msg_id": secrets.token_hex(8), "text": "in clear"}
    assert "data.encrypted" in await message_of(alice, "message.send", plain)
    assert "data.encrypted" in await message_of(alice, "message.edit", {"message_id": sent["message_id"], "text": "x"})
    assert await code(bob, "reaction.add", {"message_id": sent["message_id"], "emoji": "👍"}) == "bad_request"
    stranger = envelope(alice_device, ("u_someone_else", "default"))
    assert "ciphertexts[0].user_id" in await message_of(alice, "message.send", send_data(bob, stranger))
    twice = envelope(alice_device, (bob.user_id, "default"), (bob.user_id, "default"))
    assert await code(alice, "message.send", send_data(bob, twice)) == "bad_request"
    with_text = send_data(bob, envelope(alice_device, (bob.user_id, "default")), text="leak")
    assert "data.encrypted" in await message_of(alice, "message.send", with_text)
    messages = (await bob.call("history.fetch", {"conversation_id": conversation_id}))["messages"]
    assert [m["seq"] for m in messages] == [sent["seq"]]  # nothing refused was stored
    # And `encrypted` where the conversation is not encrypted.
    carol = await new_user(port)
    await befriend(alice, carol)
    assert carol.user_id is not None
    refused = send_data(carol, envelope(alice_device, (carol.user_id, "default")))
    assert "not end-to-end encrypted" in await message_of(alice, "message.send", refused)
    await asyncio.gather(alice.close(), bob.close(), carol.close())


async def test_a_to_device_message_waits_for_my_offline_device_until_acknowledged(port: int) -> None:
    alice = await new_user(port)
    phone = await published(alice)
    laptop_session = await log_in_again(alice, port, device_id="laptop")
    await laptop_session.wait_synced()
    await published(laptop_session, "laptop")
    await laptop_session.close()
    message = {"device_id": "laptop", "sender_key": phone.identity_key, "type": 0, "body": b64(b"history " * 8)}
    (sent_id,) = (await alice.call("devices.send", {"messages": [message]}))["ids"]
    laptop = await log_in_again(alice, port, device_id="laptop")
    got = await laptop.next_push("device.message")
    assert got["id"] == sent_id and got["from_device_id"] == "default" and got["body"] == message["body"]
    await laptop.wait_synced()  # after the device messages
    await laptop.call("devices.ack", {"ids": [sent_id]})
    await laptop.close()
    again = await log_in_again(alice, port, device_id="laptop")
    await again.wait_synced()
    assert await again.no_push("device.message", within=0.3)
    # Live, while connected; and only to my own devices with keys.
    message2 = message | {"body": b64(b"live")}
    (live_id,) = (await alice.call("devices.send", {"messages": [message2]}))["ids"]
    assert (await again.next_push("device.message"))["id"] == live_id
    assert await code(alice, "devices.send", {"messages": [message | {"device_id": "tablet"}]}) == "not_found"
    await asyncio.gather(alice.close(), again.close())


async def test_the_database_holds_no_plaintext_of_an_encrypted_conversation(port: int, database: Any) -> None:
    """What the users said travels only inside ciphertexts; here a stand-in cipher (XOR with a
    key the server never sees) hides a marker, and no collection holds it in clear."""
    alice, bob, alice_device, _, conversation_id = await encrypted_pair(port)
    assert bob.user_id is not None
    key = secrets.token_bytes(len(MARKER))
    hidden = b64(bytes(a ^ b for a, b in zip(MARKER.encode(), key, strict=True)))
    sealed = envelope(alice_device, (bob.user_id, "default"))
    sealed["ciphertexts"][0]["body"] = hidden
    sent = await alice.call("message.send", send_data(bob, sealed))
    await bob.next_push("message.new")
    for name in await database.list_collection_names():
        async for doc in database[name].find({}):
            assert MARKER not in repr(doc), f"{name} holds the marker"
    stored = await database["messages"].find_one({"_id": sent["message_id"]})
    assert stored["encrypted"]["ciphertexts"][0]["body"] == hidden and "text" not in stored
    assert conversation_id == stored["conversation_id"]
    await asyncio.gather(alice.close(), bob.close())


async def test_an_encrypted_file_travels_as_opaque_bytes_to_the_participants(port: int) -> None:
    """The client encrypts the file (AES-256-GCM, its key inside the message); the server stores
    and serves the bytes it got, named `encrypted`, to the conversation's participants only."""
    alice, bob, alice_device, _, _ = await encrypted_pair(port)
    stranger = await new_user(port)
    assert bob.user_id is not None and alice.token and bob.token and stranger.token
    opaque = secrets.token_bytes(4096)
    info = await upload(port, alice.token, opaque, "encrypted", "application/octet-stream")
    sent = await alice.call("message.send", send_data(bob, envelope(alice_device, (bob.user_id, "default")),
                                                     file_id=info["file_id"]))
    got = await bob.next_push("message.new")
    assert got["message_id"] == sent["message_id"] and got["file"]["name"] == "encrypted"
    assert (await download(port, bob.token, info["file_id"])).content == opaque
    assert (await download(port, stranger.token, info["file_id"])).status_code == 404
    await asyncio.gather(alice.close(), bob.close(), stranger.close())
