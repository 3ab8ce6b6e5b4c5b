"""Edit, reply, reactions, mentions, burn after reading and delete for me over real sockets
(docs/protocol.md "Edit, reply, reactions, mentions, burn after reading, delete for me, receipts"):
each rule, its pushes, what history and sync return after a reconnect, every refusal with its
code, and nothing stored by a refused request."""
import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.settings import Settings
from tests.support.client import Client, befriend, log_in_again, new_user


@pytest.fixture
async def stored(settings: Settings) -> AsyncIterator[Any]:
    """The stack's messages collection, read directly."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    yield client[settings.mongo_db]["messages"]
    await client.close()


async def pair(port: int) -> tuple[Client, Client]:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    return alice, bob


async def send(client: Client, to: Client, text: str = "hi", **extra: Any) -> dict[str, Any]:
    data = {"to": {"user_id": to.user_id}, "client_msg_id": secrets.token_hex(8), "text": text}
    return await client.call("message.send", data | extra)


async def history(client: Client, conversation_id: str) -> list[dict[str, Any]]:
    return (await client.call("history.fetch", {"conversation_id": conversation_id}))["messages"]


async def code(client: Client, kind: str, data: dict[str, Any]) -> str:
    reply = await client.reply(kind, data)
    assert not reply["ok"], reply
    return str(reply["error"]["code"])


async def test_the_sender_edits_and_everyone_sees_the_new_text(port: int) -> None:
    alice, bob = await pair(port)
    laptop = await log_in_again(alice, port, device_id="laptop")
    await laptop.wait_synced()
    sent = await send(alice, bob, "helo")
    await bob.next_push("message.new")
    edited = await alice.call("message.edit", {"message_id": sent["message_id"], "text": "hello"})
    for device in (bob, laptop):
        push = await device.next_push("message.edited")
        assert push == {"conversation_id": sent["conversation_id"], "message_id": sent["message_id"],
                        "seq": sent["seq"], "text": "hello", "edited_at": edited["edited_at"]}
    assert await alice.no_push("message.edited", within=0.3)  # the editing device has the reply
    (shown,) = await history(bob, sent["conversation_id"])
    assert shown["text"] == "hello" and shown["edited_at"] == edited["edited_at"]
    # Refusals, each changing nothing.
    assert await code(bob, "message.edit", {"message_id": sent["message_id"], "text": "mine now"}) == "forbidden"
    assert await code(alice, "message.edit", {"message_id": "m_nosuch", "text": "x"}) == "not_found"
    assert await code(alice, "message.edit", {"message_id": sent["message_id"], "text": ""}) == "bad_request"
    await alice.call("message.recall", {"message_id": sent["message_id"]})
    assert await code(alice, "message.edit", {"message_id": sent["message_id"], "text": "back"}) == "not_found"
    assert await history(bob, sent["conversation_id"]) == []
    await asyncio.gather(alice.close(), bob.close(), laptop.close())


async def test_a_device_offline_during_an_edit_gets_the_edited_message_once(port: int) -> None:
    alice, bob = await pair(port)
    await bob.close()
    sent = await send(alice, bob, "first draft")
    await alice.call("message.edit", {"message_id": sent["message_id"], "text": "final"})
    back = await log_in_again(bob, port)
    await back.wait_synced()
    held = back.inbox[sent["conversation_id"]]
    assert held[sent["seq"]]["text"] == "final" and "edited_at" in held[sent["seq"]]
    assert back.duplicates == 0
    await asyncio.gather(alice.close(), back.close())


async def test_a_reply_carries_a_quote_of_what_it_answers(port: int) -> None:
    alice, bob = await pair(port)
    original = await send(alice, bob, "x" * 150)
    reply = await send(bob, alice, "agreed", reply_to=original["message_id"])
    (_, answered) = await history(alice, original["conversation_id"])
    assert answered["reply_to"] == {"message_id": original["message_id"], "from_user_id": alice.user_id,
                                    "text": "x" * 100}
    assert answered["message_id"] == reply["message_id"]
    # Not of another conversation, not of a recalled message; nothing stored for either.
    carol = await new_user(port)
    await befriend(alice, carol)
    elsewhere = await send(alice, carol, "to carol")
    assert await code(bob, "message.send", {"to": {"user_id": alice.user_id}, "client_msg_id": "r2", "text": "?",
                                            "reply_to": elsewhere["message_id"]}) in ("bad_request", "not_found")
    await alice.call("message.recall", {"message_id": original["message_id"]})
    assert await code(bob, "message.send", {"to": {"user_id": alice.user_id}, "client_msg_id": "r3", "text": "?",
                                            "reply_to": original["message_id"]}) == "not_found"
    assert [m["message_id"] for m in await history(bob, original["conversation_id"])] == [reply["message_id"]]
    await asyncio.gather(alice.close(), bob.close(), carol.close())


async def test_reactions_add_remove_push_and_last(port: int) -> None:
    alice, bob = await pair(port)
    sent = await send(alice, bob, "party?")
    await bob.next_push("message.new")
    await bob.call("reaction.add", {"message_id": sent["message_id"], "emoji": "🎉"})
    # The reacting device hears the totals too (its reply is `{}`).
    assert (await bob.next_push("message.reactions"))["reactions"] == [
        {"emoji": "🎉", "count": 1, "user_ids": [bob.user_id]}]
    await alice.call("reaction.add", {"message_id": sent["message_id"], "emoji": "🎉"})
    await alice.call("reaction.add", {"message_id": sent["message_id"], "emoji": "👍🏽"})
    pushed = await bob.next_push("message.reactions")
    assert pushed["reactions"] == [{"emoji": "🎉", "count": 2, "user_ids": [bob.user_id, alice.user_id]}]
    await alice.call("reaction.add", {"message_id": sent["message_id"], "emoji": "👍🏽"})  # again: nothing new
    await bob.call("reaction.remove", {"message_id": sent["message_id"], "emoji": "🎉"})
    (shown,) = await history(alice, sent["conversation_id"])
    assert shown["reactions"] == [
        {"emoji": "🎉", "count": 1, "user_ids": [alice.user_id]},
        {"emoji": "👍🏽", "count": 1, "user_ids": [alice.user_id]},
    ]
    assert await code(bob, "reaction.add", {"message_id": sent["message_id"], "emoji": "ok"}) == "bad_request"
    assert await code(bob, "reaction.add", {"message_id": sent["message_id"], "emoji": "👍👍"}) == "bad_request"
    stranger = await new_user(port)
    assert await code(stranger, "reaction.add", {"message_id": sent["message_id"], "emoji": "😡"}) == "not_found"
    # At most 20 different emoji on one message.
    many = [chr(0x1F600 + i) for i in range(18)]
    for emoji in many:
        await bob.call("reaction.add", {"message_id": sent["message_id"], "emoji": emoji})
    assert await code(bob, "reaction.add", {"message_id": sent["message_id"], "emoji": "🦊"}) == "conflict"
    await bob.call("reaction.add", {"message_id": sent["message_id"], "emoji": many[0]})  # one already there: fine
    (shown,) = await history(bob, sent["conversation_id"])
    assert len(shown["reactions"]) == 20
    await asyncio.gather(alice.close(), bob.close(), stranger.close())


async def test_mentions_are_for_members_of_groups(port: int) -> None:
    alice, bob = await pair(port)
    outsider = await new_user(port)
    group = await alice.call("groups.create", {"name": "G", "member_ids": [bob.user_id]})
    to_group = {"to": {"group_id": group["group_id"]}, "text": "@bob look"}
    sent = await alice.call("message.send", to_group | {"client_msg_id": "g1", "mentions": [bob.user_id]})
    assert (await bob.next_push("message.new"))["mentions"] == [bob.user_id]
    refused = to_group | {"client_msg_id": "g2", "mentions": [outsider.user_id]}
    assert await code(alice, "message.send", refused) == "bad_request"
    direct = {"to": {"user_id": bob.user_id}, "client_msg_id": "d1", "text": "hi", "mentions": [bob.user_id]}
    assert await code(alice, "message.send", direct) == "bad_request"
    assert [m["seq"] for m in await history(alice, group["conversation_id"])] == [sent["seq"]]
    await asyncio.gather(alice.close(), bob.close(), outsider.close())


async def test_burn_after_reading_from_sending_to_destruction(port: int, stored: Any) -> None:
    alice, bob = await pair(port)
    bob_tablet = await log_in_again(bob, port, device_id="tablet")
    await bob_tablet.wait_synced()
    await bob_tablet.close()  # offline for the whole burn: must never receive the content
    sent = await send(alice, bob, "self-destructing", burn_seconds=1)
    sealed = await bob.next_push("message.new")
    assert "text" not in sealed and sealed["burn"] == {"seconds": 1, "burns_at": sealed["burn"]["burns_at"]}
    assert await code(alice, "message.open", {"message_id": sent["message_id"]}) == "forbidden"
    opened = await bob.call("message.open", {"message_id": sent["message_id"]})
    assert opened["text"] == "self-destructing" and opened["burn"]["opened_at"]
    told = await alice.next_push("message.opened")
    assert told["message_id"] == sent["message_id"] and told["burns_at"] == opened["burn"]["burns_at"]
    for client in (alice, bob):
        assert (await client.next_push("message.burned", timeout=15)) == {
            "conversation_id": sent["conversation_id"], "message_id": sent["message_id"]}
    doc = await stored.find_one({"_id": sent["message_id"]})
    assert doc["burned"] is True and "text" not in doc  # the content is gone from the database
    assert await history(alice, sent["conversation_id"]) == await history(bob, sent["conversation_id"]) == []
    assert await code(bob, "message.open", {"message_id": sent["message_id"]}) == "not_found"
    tablet = await log_in_again(bob, port, device_id="tablet")
    await tablet.wait_synced()
    assert sent["seq"] not in tablet.inbox[sent["conversation_id"]]
    # Not for groups; not with a timer too.
    group = await alice.call("groups.create", {"name": "G", "member_ids": [bob.user_id]})
    in_group = {"to": {"group_id": group["group_id"]}, "client_msg_id": "b2", "text": "x", "burn_seconds": 5}
    assert await code(alice, "message.send", in_group) == "bad_request"
    both = {"to": {"user_id": bob.user_id}, "client_msg_id": "b3", "text": "x", "burn_seconds": 5, "ttl_seconds": 9}
    assert await code(alice, "message.send", both) == "bad_request"
    await asyncio.gather(alice.close(), bob.close(), tablet.close())


async def test_delete_for_me_hides_it_from_my_devices_only(port: int) -> None:
    alice, bob = await pair(port)
    phone = await log_in_again(bob, port, device_id="phone")
    await phone.wait_synced()
    first = await send(alice, bob, "one")
    second = await send(alice, bob, "two")
    await bob.call("message.hide", {"message_id": first["message_id"]})
    assert (await phone.next_push("message.hidden"))["message_id"] == first["message_id"]
    assert [m["text"] for m in await history(bob, first["conversation_id"])] == ["two"]
    assert [m["text"] for m in await history(alice, first["conversation_id"])] == ["one", "two"]
    (entry,) = (await bob.call("conversations.list"))["conversations"]
    assert entry["unread"] == 1 and entry["last_message"]["message_id"] == second["message_id"]
    assert await code(bob, "message.hide", {"message_id": first["message_id"]}) == "not_found"  # already gone
    await asyncio.gather(alice.close(), bob.close(), phone.close())
