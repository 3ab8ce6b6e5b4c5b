"""Conversations list and unread, read receipts, typing, recall and disappearing messages."""
import asyncio
from datetime import datetime, timezone

from tests.support.client import Client, befriend, new_user


async def test_conversations_list_unread_and_read_receipts(port: int) -> None:
    alice, bob, carol = await new_user(port), await new_user(port), await new_user(port)
    await befriend(alice, bob)
    direct = [await alice.send_text(bob.user_id, f"d{i}") for i in range(3)]
    await bob.send_text(alice.user_id, "bob's own")  # not unread for bob
    group = await carol.call("groups.create", {"name": "G", "member_ids": [bob.user_id]})
    for i in range(2):
        await carol.call("message.send", {"to": {"group_id": group["group_id"]}, "client_msg_id": f"g{i}", "text": f"g{i}"})

    listed = (await bob.call("conversations.list"))["conversations"]
    assert [c["kind"] for c in listed] == ["group", "direct"]  # newest activity first
    g, d = listed
    assert g["group"] == {"group_id": group["group_id"], "name": "G"} and "peer" not in g
    assert g["unread"] == 2 and g["last_seq"] == 2 and g["last_message"]["text"] == "g1"
    assert d["peer"] == {
        "user_id": alice.user_id, "username": alice.username, "display_name": alice.username, "avatar_url": None,
    }
    assert "group" not in d and d["unread"] == 3 and d["last_message"]["text"] == "bob's own"

    await bob.call("message.read", {"conversation_id": d["conversation_id"], "seq": 2})
    receipt = await alice.next_push("receipt.read")
    assert receipt == {"conversation_id": d["conversation_id"], "user_id": bob.user_id, "seq": 2}
    assert await bob.no_push("receipt.read", within=0.5)  # not to the reader
    listed = {c["conversation_id"]: c for c in (await bob.call("conversations.list"))["conversations"]}
    assert listed[d["conversation_id"]]["unread"] == 1
    # The read marker is the user's, shared by all their devices.
    phone = await Client(port).connect()
    phone.username = bob.username
    await phone.login("phone")
    await phone.wait_synced()
    listed = {c["conversation_id"]: c for c in (await phone.call("conversations.list"))["conversations"]}
    assert listed[d["conversation_id"]]["unread"] == 1 and listed[group["conversation_id"]]["unread"] == 2
    beyond = await bob.reply("message.read", {"conversation_id": d["conversation_id"], "seq": 99})
    assert beyond["error"]["code"] == "bad_request"
    assert direct[0]["conversation_id"] == d["conversation_id"]
    for client in (alice, bob, carol, phone):
        await client.close()


async def test_typing_reaches_the_others_online_and_is_throttled(port: int) -> None:
    alice, bob, eve = await new_user(port), await new_user(port), await new_user(port)
    await befriend(alice, bob)
    sent = await alice.send_text(bob.user_id, "hi")
    conversation_id = sent["conversation_id"]
    await bob.call("typing", {"conversation_id": conversation_id})
    # Within a second: coalesced (sent right away, before waiting for anything, to be well within it).
    await bob.call("typing", {"conversation_id": conversation_id})
    assert await alice.next_push("typing") == {"conversation_id": conversation_id, "user_id": bob.user_id}
    assert await alice.no_push("typing", within=0.5)
    await asyncio.sleep(1.0)  # the window the first frame opened is over
    await bob.call("typing", {"conversation_id": conversation_id})
    assert (await alice.next_push("typing"))["user_id"] == bob.user_id
    assert await bob.no_push("typing", within=0.3)
    assert (await eve.reply("typing", {"conversation_id": conversation_id}))["error"]["code"] == "forbidden"
    history = await alice.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["text"] for m in history["messages"]] == ["hi"]  # typing is never stored
    for client in (alice, bob, eve):
        await client.close()


async def test_recall_hides_a_message_from_history_sync_and_unread(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    kept = await alice.send_text(bob.user_id, "kept")
    oops = await alice.send_text(bob.user_id, "oops")
    conversation_id = oops["conversation_id"]
    await bob.next_push("message.new")
    await bob.next_push("message.new")

    assert (await bob.reply("message.recall", {"message_id": oops["message_id"]}))["error"]["code"] == "forbidden"
    assert (await bob.reply("message.recall", {"message_id": "m_nothing"}))["error"]["code"] == "not_found"
    await alice.call("message.recall", {"message_id": oops["message_id"]})
    assert await bob.next_push("message.recalled") == {"conversation_id": conversation_id, "message_id": oops["message_id"]}
    assert await alice.call("message.recall", {"message_id": oops["message_id"]}) == {}  # again: fine

    history = await bob.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["text"] for m in history["messages"]] == ["kept"]
    listed = (await bob.call("conversations.list"))["conversations"][0]
    assert listed["unread"] == 1 and listed["last_message"]["message_id"] == kept["message_id"]
    tablet = await Client(port).connect()
    tablet.username = bob.username
    await tablet.login("tablet-new")
    await tablet.wait_synced()
    # A device that had not acknowledged: the recalled message is not synced.
    await bob.close()
    again = await Client(port).connect()
    again.username = bob.username
    await again.login()
    assert await again.wait_synced() == 1
    assert again.texts(conversation_id) == ["kept"]
    for client in (alice, tablet, again):
        await client.close()


async def test_disappearing_messages_are_gone_after_their_time(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await alice.send_text(bob.user_id, "stays")
    brief = await alice.call(
        "message.send", {"to": {"user_id": bob.user_id}, "client_msg_id": "brief", "text": "gone soon", "ttl_seconds": 1}
    )
    live = [await bob.next_push("message.new") for _ in range(2)]
    assert live[1]["text"] == "gone soon" and live[1]["expires_at"] > live[1]["sent_at"]
    assert "expires_at" not in live[0]
    await bob.close()
    # Just past its expiry ("from that instant no query returns it"): chat reads with this
    # machine's clock, so one look after that instant is no bet on how fast anything is.
    expires_at = datetime.fromisoformat(live[1]["expires_at"].replace("Z", "+00:00"))
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds()) + 0.05)

    conversation_id = brief["conversation_id"]
    history = await alice.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["text"] for m in history["messages"]] == ["stays"]
    back = await Client(port).connect()
    back.username = bob.username
    await back.login()
    assert await back.wait_synced() == 1
    assert back.texts(conversation_id) == ["stays"]
    listed = (await back.call("conversations.list"))["conversations"][0]
    assert listed["unread"] == 1 and listed["last_message"]["text"] == "stays"
    for client in (alice, back):
        await client.close()
