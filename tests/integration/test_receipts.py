"""Receipts that last, mentions and a sync catching up on changes, over real sockets
(docs/protocol.md "Edit, reply, reactions, mentions, burn after reading, delete for me,
receipts"): `read_by` / `delivered_to` after a reload, `receipt.delivered` once per advance,
a group's "read by N of M", `unread_mentions`, and an edit made while a device was away."""
import asyncio
import secrets
from typing import Any

from tests.support.client import Client, befriend, log_in_again, new_user


def positions(found: list[dict[str, Any]]) -> dict[str, int]:
    return {p["user_id"]: p["seq"] for p in found}


async def entry(client: Client, conversation_id: str) -> dict[str, Any]:
    listed = (await client.call("conversations.list"))["conversations"]
    [found] = [c for c in listed if c["conversation_id"] == conversation_id]
    return found


async def until_synced(client: Client) -> list[dict[str, Any]]:
    """Every push a fresh socket gets up to and including `sync.done`."""
    pushes = []
    while True:
        push = await asyncio.wait_for(client.pushes.get(), 30)
        pushes.append(push)
        if push["type"] == "sync.done":
            return pushes


async def group_send(client: Client, group: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    data = {"to": {"group_id": group["group_id"]}, "client_msg_id": secrets.token_hex(8), "text": text}
    return await client.call("message.send", data | extra)


async def test_receipts_survive_a_reload_and_delivered_is_pushed_once_per_advance(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    sent = [await alice.send_text(bob.user_id, f"m{i}") for i in range(1, 4)]
    cid = sent[0]["conversation_id"]
    for _ in sent:
        await bob.next_push("message.new")
    await bob.call("message.ack", {"conversation_id": cid, "seq": 3})
    assert await alice.next_push("receipt.delivered") == {"conversation_id": cid, "user_id": bob.user_id, "seq": 3}
    assert await bob.no_push("receipt.delivered", within=0.3)  # not to the acknowledging user
    await bob.call("message.read", {"conversation_id": cid, "seq": 2})
    await alice.next_push("receipt.read")

    # Bob's second device acknowledges the same: his marker does not move, nobody is told again.
    tablet = await log_in_again(bob, port, "tablet")
    await tablet.wait_synced()
    await tablet.call("message.ack", {"conversation_id": cid, "seq": 3})
    assert await alice.no_push("receipt.delivered", within=0.7)

    # Alice reloads: a new socket sees where bob is, in the list and in history.
    await alice.close()
    reloaded = await log_in_again(alice, port)
    await reloaded.wait_synced()
    listed = await entry(reloaded, cid)
    assert listed["read_by"] == [{"user_id": bob.user_id, "seq": 2}]
    assert listed["delivered_to"] == [{"user_id": bob.user_id, "seq": 3}]
    history = await reloaded.call("history.fetch", {"conversation_id": cid})
    assert positions(history["read_by"]) == {bob.user_id: 2} and positions(history["delivered_to"]) == {bob.user_id: 3}
    # Bob sees alice's positions, never his own: she has acknowledged nothing here (her own messages).
    mine = await entry(bob, cid)
    assert mine["read_by"] == [] and mine["delivered_to"] == []
    for client in (reloaded, bob, tablet):
        await client.close()


async def test_a_group_shows_every_other_members_position(port: int) -> None:
    carol = await new_user(port)
    alice, bob, dave = await new_user(port), await new_user(port), await new_user(port)
    group = await carol.call("groups.create", {"name": "G", "member_ids": [alice.user_id, bob.user_id, dave.user_id]})
    cid = group["conversation_id"]
    for i in range(1, 4):
        await group_send(carol, group, f"g{i}")
    await alice.call("message.ack", {"conversation_id": cid, "seq": 3})
    await alice.call("message.read", {"conversation_id": cid, "seq": 3})
    await bob.call("message.ack", {"conversation_id": cid, "seq": 2})
    await bob.call("message.read", {"conversation_id": cid, "seq": 1})
    # Every other member hears of a delivery, the sender and the members alike.
    assert await dave.next_push("receipt.delivered") == {"conversation_id": cid, "user_id": alice.user_id, "seq": 3}
    listed = await entry(carol, cid)
    assert positions(listed["read_by"]) == {alice.user_id: 3, bob.user_id: 1}  # g2: read by 1 of 3
    assert positions(listed["delivered_to"]) == {alice.user_id: 3, bob.user_id: 2}
    assert positions((await entry(dave, cid))["read_by"]) == {alice.user_id: 3, bob.user_id: 1}
    assert alice.user_id not in positions((await alice.call("history.fetch", {"conversation_id": cid}))["read_by"])
    for client in (carol, alice, bob, dave):
        await client.close()


async def test_unread_mentions_are_counted_and_cleared_by_reading(port: int) -> None:
    carol, alice, bob = await new_user(port), await new_user(port), await new_user(port)
    group = await carol.call("groups.create", {"name": "G", "member_ids": [alice.user_id, bob.user_id]})
    cid = group["conversation_id"]
    await group_send(carol, group, "hey @alice", mentions=[alice.user_id])
    await group_send(carol, group, "all")
    await group_send(bob, group, "@alice @carol", mentions=[alice.user_id, carol.user_id])
    listed = await entry(alice, cid)
    assert (listed["unread"], listed["unread_mentions"]) == (3, 2)
    assert (await entry(carol, cid))["unread_mentions"] == 1
    assert (await entry(bob, cid))["unread_mentions"] == 0
    await alice.call("message.read", {"conversation_id": cid, "seq": 3})
    listed = await entry(alice, cid)
    assert (listed["unread"], listed["unread_mentions"]) == (0, 0)
    for client in (carol, alice, bob):
        await client.close()


async def test_a_device_offline_during_an_edit_gets_the_change_on_reconnect_and_no_second_message_new(
    port: int,
) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    first = await alice.send_text(bob.user_id, "tpyo")
    await alice.send_text(bob.user_id, "second")
    cid = first["conversation_id"]
    await bob.next_push("message.new")
    await bob.next_push("message.new")
    await bob.ack_all()
    await bob.close()

    edited = await alice.call("message.edit", {"message_id": first["message_id"], "text": "typo"})
    third = await alice.send_text(bob.user_id, "third")

    back = await log_in_again(bob, port)
    pushes = await until_synced(back)
    assert [(p["type"], p["data"].get("seq")) for p in pushes] == [
        ("message.new", third["seq"]),
        ("message.changed", first["seq"]),
        ("sync.done", None),
    ]
    changed = pushes[1]["data"]
    assert changed["conversation_id"] == cid and changed["text"] == "typo"
    assert changed["edited_at"] == edited["edited_at"]
    assert back.duplicates == 0
    for client in (alice, back):
        await client.close()
