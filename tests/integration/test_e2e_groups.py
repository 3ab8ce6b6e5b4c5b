"""End-to-end encrypted groups, the server's part (docs/security.md "Encrypted groups"), over real
sockets: a group turned encrypted by its admin, a member's Megolm message delivered whole to every
member live and by sync, plaintext and Olm refused there, and a room key sent as a to-device
message to another member's device, stored until acknowledged; none to a stranger. Ciphertexts
are opaque stand-ins (tests/support/fake_olm.py); real Megolm is the clients' tests."""
import asyncio
import secrets
from typing import Any

from tests.integration.test_e2e import code, message_of, published
from tests.support.client import Client, befriend, log_in_again, new_user
from tests.support.fake_olm import b64, envelope, megolm_envelope


async def a_group(port: int) -> tuple[Client, Client, Client, dict[str, Any]]:
    """Olga's group with Adam, made an admin, and Mina."""
    olga, adam, mina = await new_user(port), await new_user(port), await new_user(port)
    group = await olga.call("groups.create", {"name": "g", "member_ids": [adam.user_id, mina.user_id]})
    await olga.call("groups.set_role", {"group_id": group["group_id"], "user_id": adam.user_id, "role": "admin"})
    return olga, adam, mina, group


def group_send(group: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {"to": {"group_id": group["group_id"]}, "client_msg_id": secrets.token_hex(8), **data}


async def test_an_admin_encrypts_a_group_and_megolm_messages_reach_every_member_whole(port: int) -> None:
    olga, adam, mina, group = await a_group(port)
    target = {"to": {"group_id": group["group_id"]}}
    assert await code(mina, "conversations.encrypt", target) == "forbidden"
    reply = await adam.call("conversations.encrypt", target)
    assert reply["conversation_id"] == group["conversation_id"]
    pushed = {"conversation_id": group["conversation_id"], "by_user_id": adam.user_id, "encrypted_at": reply["encrypted_at"]}
    for member in (olga, adam, mina):
        assert await member.next_push("conversation.encrypted") == pushed
    listed = (await mina.call("conversations.list"))["conversations"]
    assert [c["encrypted_at"] for c in listed if c["conversation_id"] == group["conversation_id"]] == [reply["encrypted_at"]]
    await olga.close()  # offline: gets it by sync
    mina_device = await published(mina)
    sealed = megolm_envelope(mina_device)
    sent = await mina.call("message.send", group_send(group, encrypted=sealed))
    live = await adam.next_push("message.new")
    assert live["encrypted"] == sealed and live["seq"] == sent["seq"] and "text" not in live
    back = await log_in_again(olga, port)
    await back.wait_synced()
    assert back.inbox[group["conversation_id"]][sent["seq"]]["encrypted"] == sealed
    (fetched,) = (await back.call("history.fetch", {"conversation_id": group["conversation_id"]}))["messages"]
    assert fetched["encrypted"] == sealed and fetched["message_id"] == sent["message_id"]
    # Plaintext, Olm and mentions in clear are refused; nothing refused is stored.
    assert "data.encrypted" in await message_of(mina, "message.send", group_send(group, text="in clear"))
    olm = envelope(mina_device, (adam.user_id or "", "default"))
    assert "data.encrypted.algorithm" in await message_of(mina, "message.send", group_send(group, encrypted=olm))
    mentions = group_send(group, encrypted=megolm_envelope(mina_device), mentions=[adam.user_id])
    assert await code(mina, "message.send", mentions) == "bad_request"
    assert await code(adam, "reaction.add", {"message_id": sent["message_id"], "emoji": "👍"}) == "bad_request"
    history = (await adam.call("history.fetch", {"conversation_id": group["conversation_id"]}))["messages"]
    assert [m["seq"] for m in history] == [sent["seq"]]
    await asyncio.gather(back.close(), adam.close(), mina.close())


async def test_a_room_key_waits_for_another_members_device_until_acknowledged(port: int) -> None:
    olga, adam, mina, group = await a_group(port)
    stranger = await new_user(port)
    await befriend(mina, stranger)  # a friend, but no encrypted conversation with Mina
    mina_device = await published(mina)
    await asyncio.gather(published(olga), published(stranger))
    key = {"user_id": olga.user_id, "device_id": "default", "sender_key": mina_device.identity_key, "type": 0,
           "body": b64(b"room key " * 8)}
    assert await code(mina, "devices.send", {"messages": [key]}) == "forbidden"  # not encrypted yet
    await olga.call("conversations.encrypt", {"to": {"group_id": group["group_id"]}})
    assert await code(mina, "devices.send", {"messages": [key | {"user_id": stranger.user_id}]}) == "forbidden"
    assert await code(mina, "devices.send", {"messages": [key | {"user_id": adam.user_id}]}) == "not_found"  # no keys
    await olga.close()
    (sent_id,) = (await mina.call("devices.send", {"messages": [key]}))["ids"]
    back = await log_in_again(olga, port)
    got = await back.next_push("device.message")
    assert got["id"] == sent_id and got["from_user_id"] == mina.user_id and got["from_device_id"] == "default"
    assert got["body"] == key["body"] and got["sender_key"] == key["sender_key"]
    await back.wait_synced()  # after the device messages
    await back.call("devices.ack", {"ids": [sent_id]})
    await back.close()
    again = await log_in_again(olga, port)
    await again.wait_synced()
    assert await again.no_push("device.message", within=0.3)
    # Live, while connected.
    (live_id,) = (await mina.call("devices.send", {"messages": [key | {"body": b64(b"rotated")}]}))["ids"]
    live = await again.next_push("device.message")
    assert live["id"] == live_id and live["from_user_id"] == mina.user_id
    await asyncio.gather(again.close(), adam.close(), mina.close(), stranger.close())
