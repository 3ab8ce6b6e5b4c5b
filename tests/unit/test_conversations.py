"""services/chat/domain/conversations.py: the conversations list, read receipts, recall, typing;
asked through chat's router as a client's commands arrive."""
import asyncio
from datetime import timedelta

import pytest

from shared.partitions import direct_conversation_id
from shared.contracts import conversations as contract
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode
from tests.support.waiting import eventually
from tests.unit.helpers import profile, tick
from tests.unit.world import chat_world, refusal

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"
PROFILES = {u: profile(u) for u in (A, B, C, D)}
AB, AC = direct_conversation_id(A, B), direct_conversation_id(A, C)


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *PROFILES.values()) as world:
        await world.befriend(A, B)
        await world.befriend(A, C)
        yield world


# --- the operations, as a client asks them ------------------------------------------------------
async def send(world, sender, to, client_msg_id, text="hi", device="d1", **extra):
    """message.send to a user, or to a group (`to` a group id)."""
    where = {"group": to} if to.startswith("g_") else {"to": to}
    return await world.send(sender, **where, device=device, client_msg_id=client_msg_id, text=text, **extra)


async def send_many(world, n, sender, to, prefix="m"):
    return [await send(world, sender, to, f"{prefix}{i}", text=f"text {i}") for i in range(1, n + 1)]


async def create_group(world, creator, member_ids, name="team") -> tuple[str, str]:
    reply = await world.ask(creator, "groups.create", name=name, member_ids=member_ids)
    return reply.group_id, reply.conversation_id


async def add_members(world, adder, group_id, user_ids):
    await world.ask(adder, "groups.add_members", group_id=group_id, user_ids=user_ids)


async def listing(world, user) -> list[contract.ConversationEntry]:
    return (await world.ask(user, "conversations.list")).conversations


async def entry(world, user, conversation_id) -> contract.ConversationEntry:
    [found] = [e for e in await listing(world, user) if e.conversation_id == conversation_id]
    return found


async def unread(world, user, conversation_id) -> int:
    return (await entry(world, user, conversation_id)).unread


async def read(world, user, seq, conversation_id=AB):
    await world.ask(user, "message.read", conversation_id=conversation_id, seq=seq)


async def recall(world, user, message_id, device="d1"):
    await world.ask(user, "message.recall", message_id=message_id, device=device)


async def typing(world, user, conversation_id):
    await world.ask(user, "typing", conversation_id=conversation_id)


async def history(world, user, conversation_id=AB):
    return await world.ask(user, "history.fetch", conversation_id=conversation_id)





# --- conversations.list ------------------------------------------------------------------------
async def test_a_direct_entry_has_the_peer_and_a_group_entry_has_the_group(world):
    first = await send(world, B, A, "b1", text="hello alice")
    group_id, conversation_id = await create_group(world, A, [B], name="team")

    by_id = {e.conversation_id: e.model_dump() for e in await listing(world, A)}

    direct = by_id[AB]
    assert direct["kind"] == "direct"
    assert direct["peer"] == PROFILES[B].model_dump()
    assert "group" not in direct
    assert (direct["last_seq"], direct["unread"]) == (1, 1)
    assert direct["last_message"] == {
        "message_id": first.message_id,
        "conversation_id": AB,
        "seq": 1,
        "from_user_id": B,
        "to": {"user_id": A},
        "text": "hello alice",
        "sent_at": first.sent_at,
    }
    group = by_id[conversation_id]
    assert group == {
        "conversation_id": conversation_id,
        "kind": "group",
        "group": {"group_id": group_id, "name": "team"},
        "last_seq": 0,
        "unread": 0,
        "unread_mentions": 0,
        "read_by": [],
        "delivered_to": [],
    }
    assert set(by_id) == {AB, conversation_id}
    # The other side sees the same direct conversation with A as the peer.
    assert (await entry(world, B, AB)).peer == PROFILES[A]


async def test_a_user_without_conversations_gets_an_empty_list(world):
    assert await listing(world, D) == []
    await send(world, A, B, "a1")
    assert await listing(world, C) == []


async def test_newest_activity_comes_first(world):
    await send(world, A, B, "a1")
    await tick()
    _, group_conv = await create_group(world, A, [B])
    await tick()
    await send(world, C, A, "c1")

    assert [e.conversation_id for e in await listing(world, A)] == [AC, group_conv, AB]

    await tick()
    await send(world, B, A, "b1")
    assert [e.conversation_id for e in await listing(world, A)] == [AB, AC, group_conv]

    await tick()
    group_id = (await world.stored_conversation(group_conv))["group_id"]
    await send(world, B, group_id, "b2")
    assert [e.conversation_id for e in await listing(world, A)] == [group_conv, AB, AC]


async def test_last_message_is_the_latest_visible_one(world):
    replies = await send_many(world, 3, A, B)
    await recall(world, A, replies[2].message_id)

    mine = await entry(world, A, AB)
    assert (mine.last_seq, mine.last_message.seq, mine.last_message.text) == (3, 2, "text 2")
    await recall(world, A, replies[1].message_id)
    await recall(world, A, replies[0].message_id)
    assert (await entry(world, B, AB)).last_message is None
    assert "last_message" not in (await entry(world, B, AB)).model_dump()


async def test_unread_counts_the_others_messages_above_the_read_marker(world):
    await send_many(world, 3, A, B, prefix="a")
    await send_many(world, 2, B, A, prefix="b")

    assert await unread(world, B, AB) == 3  # A's three; B's own two do not count
    assert await unread(world, A, AB) == 2

    await read(world, B, 2)
    assert await unread(world, B, AB) == 1
    await read(world, B, 5)
    assert await unread(world, B, AB) == 0
    await send(world, A, B, "a4")
    assert await unread(world, B, AB) == 1


async def test_unread_skips_recalled_and_expired_messages(world):
    replies = await send_many(world, 3, A, B)
    await send(world, A, B, "short", text="gone soon", ttl_seconds=1)
    await send(world, A, B, "long", text="stays", ttl_seconds=3600)
    await recall(world, A, replies[1].message_id)
    assert await unread(world, B, AB) == 4

    await asyncio.sleep(1.1)

    mine = await entry(world, B, AB)
    assert mine.unread == 3
    assert (mine.last_message.seq, mine.last_message.text) == (5, "stays")


async def test_a_later_group_member_counts_and_sees_only_messages_after_joining(world):
    group_id, conversation_id = await create_group(world, A, [B])
    await send_many(world, 3, A, group_id)
    await add_members(world, A, group_id, [D])

    mine = await entry(world, D, conversation_id)
    assert (mine.unread, mine.last_message) == (0, None)
    assert (await entry(world, B, conversation_id)).unread == 3

    later = await send(world, B, group_id, "late", text="welcome dave")
    mine = await entry(world, D, conversation_id)
    assert mine.unread == 1
    assert (mine.last_message.message_id, mine.last_message.text) == (later.message_id, "welcome dave")
    await read(world, D, 4, conversation_id)
    assert await unread(world, D, conversation_id) == 0


# --- message.read ------------------------------------------------------------------------------
async def test_reading_beyond_the_last_message_is_bad_request(world):
    await send_many(world, 2, A, B)
    await world.online(A)
    err = await refusal(read(world, B, 3))
    assert err.code == ErrorCode.BAD_REQUEST
    assert "seq" in err.message
    assert world.outbox.sent == []
    assert await unread(world, B, AB) == 2


async def test_only_participants_may_mark_read(world):
    await send(world, A, B, "a1")
    for conversation_id in (AB, "d_doesnotexist"):
        err = await refusal(read(world, C, 1, conversation_id))
        assert err.code == ErrorCode.FORBIDDEN


async def test_receipt_read_goes_to_the_other_participants_only(world):
    group_id, conversation_id = await create_group(world, A, [B, C])
    await send_many(world, 3, B, group_id)
    await world.online(A, "phone", "gw1", "c1")
    await world.online(A, "laptop", "gw2", "c2")
    await world.online(B, "phone", "gw1", "c3")
    await world.online(C, "tablet", "gw2", "c4")
    await world.online(D, "phone", "gw1", "c5")
    world.outbox.clear()

    await read(world, A, 2, conversation_id)

    receipt = [{"type": "receipt.read", "data": {"conversation_id": conversation_id, "user_id": A, "seq": 2}}]
    assert world.outbox.received_by(B, "phone") == receipt
    assert world.outbox.received_by(C, "tablet") == receipt
    assert world.outbox.received_by(A, "phone") == []
    assert world.outbox.received_by(A, "laptop") == []
    assert world.outbox.received_by(D, "phone") == []


async def test_reading_the_same_or_a_lower_seq_again_pushes_nothing(world):
    await send_many(world, 5, A, B)
    await world.online(A)
    await read(world, B, 3)
    assert world.pushes(A, "d1", "receipt.read") == [{"conversation_id": AB, "user_id": B, "seq": 3}]
    world.outbox.clear()

    await read(world, B, 3)
    await read(world, B, 1)

    assert world.outbox.sent == []
    assert await unread(world, B, AB) == 2  # the marker stayed at 3
    await read(world, B, 5)
    assert world.pushes(A, "d1", "receipt.read") == [{"conversation_id": AB, "user_id": B, "seq": 5}]


async def test_the_read_marker_is_the_users_not_a_devices(world):
    await send_many(world, 4, A, B)
    await world.online(A)
    await world.ack(B, AB, 4, device="phone")
    assert await unread(world, B, AB) == 4  # delivering is not reading

    await read(world, B, 3)  # read on the phone ...
    world.outbox.clear()
    await read(world, B, 2)  # ... so the tablet, behind, has nothing to report

    assert world.outbox.sent == []
    assert await world.cursors.read_positions(B) == {AB: 3}
    assert await world.cursors.of_device(B, "phone") == {AB: 4}
    assert await world.cursors.of_device(B, "tablet") == {}
    assert await unread(world, B, AB) == 1


# --- message.recall ----------------------------------------------------------------------------
async def test_only_the_sender_may_recall(world):
    reply = await send(world, A, B, "a1", text="mine")
    err = await refusal(recall(world, B, reply.message_id))
    assert err.code == ErrorCode.FORBIDDEN
    assert [m.text for m in (await history(world, B)).messages] == ["mine"]


async def test_recalling_an_unknown_message_is_not_found(world):
    assert (await refusal(recall(world, A, "m_doesnotexist"))).code == ErrorCode.NOT_FOUND


async def test_a_non_participant_cannot_tell_the_message_exists(world):
    reply = await send(world, A, B, "a1")
    err = await refusal(recall(world, C, reply.message_id))
    assert err.code == ErrorCode.NOT_FOUND
    assert err.message == (await refusal(recall(world, C, "m_doesnotexist"))).message
    assert len((await history(world, B)).messages) == 1


async def test_recall_is_refused_after_ten_minutes(world, db):
    old, recent = await send_many(world, 2, A, B)
    await db["messages"].update_one({"_id": old.message_id}, {"$set": {"sent_at": utc_now() - timedelta(minutes=11)}})
    await db["messages"].update_one({"_id": recent.message_id}, {"$set": {"sent_at": utc_now() - timedelta(minutes=9)}})
    await world.online(B)

    err = await refusal(recall(world, A, old.message_id))

    assert err.code == ErrorCode.FORBIDDEN
    assert "10 minutes" in err.message
    assert world.outbox.sent == []
    assert [m.seq for m in (await history(world, B)).messages] == [1, 2]
    await recall(world, A, recent.message_id)  # nine minutes is still in time
    assert [m.seq for m in (await history(world, B)).messages] == [1]


async def test_a_recalled_message_leaves_history_sync_and_unread(world, db):
    replies = await send_many(world, 3, A, B)

    await recall(world, A, replies[1].message_id)

    for user in (A, B):
        assert [(m.seq, m.text) for m in (await history(world, user)).messages] == [(1, "text 1"), (3, "text 3")]
    await world.sync(B, "phone")
    assert world.pushes(B, "phone", "sync.done") == [{"count": 2}]
    assert [p["data"].get("seq") for p in world.outbox.received_by(B, "phone")] == [1, 3, None]
    assert await unread(world, B, AB) == 2
    stored = await db["messages"].find_one({"_id": replies[1].message_id})
    assert stored["recalled"] is True and "text" not in stored  # the content is gone, the seq stays
    assert (await send(world, B, A, "b1")).seq == 4


async def test_message_recalled_reaches_the_participants_devices_but_the_recalling_one(world):
    reply = await send(world, A, B, "a1", device="phone")
    await world.online(A, "phone", "gw1", "c1")  # recalls
    await world.online(A, "laptop", "gw2", "c2")
    await world.online(B, "phone", "gw1", "c3")
    await world.online(B, "tablet", "gw2", "c4")
    await world.online(C, "phone", "gw1", "c5")  # not a participant
    world.outbox.clear()

    await recall(world, A, reply.message_id, device="phone")

    recalled = [{"type": "message.recalled", "data": {"conversation_id": AB, "message_id": reply.message_id}}]
    for user, device in ((A, "laptop"), (B, "phone"), (B, "tablet")):
        assert world.outbox.received_by(user, device) == recalled
    assert world.outbox.received_by(A, "phone") == []
    assert world.outbox.received_by(C, "phone") == []


async def test_message_recalled_reaches_every_group_member(world):
    group_id, conversation_id = await create_group(world, A, [B, C])
    reply = await send(world, B, group_id, "b1")
    for user in (A, B, C, D):
        await world.online(user, "phone")
    world.outbox.clear()

    await recall(world, B, reply.message_id, device="tablet")

    recalled = {"conversation_id": conversation_id, "message_id": reply.message_id}
    for user in (A, B, C):
        assert world.pushes(user, "phone", "message.recalled") == [recalled]
    assert world.outbox.received_by(D, "phone") == []


async def test_a_member_who_joined_after_the_message_is_not_told_of_its_recall(world):
    group_id, conversation_id = await create_group(world, A, [B])
    reply = await send(world, B, group_id, "b1")
    await add_members(world, A, group_id, [D])
    for user in (A, D):
        await world.online(user, "phone")
    world.outbox.clear()

    await recall(world, B, reply.message_id)

    assert world.pushes(A, "phone", "message.recalled") == [
        {"conversation_id": conversation_id, "message_id": reply.message_id}
    ]
    assert world.pushes(D, "phone", "message.recalled") == []


async def test_recalling_twice_is_fine_and_pushes_once(world):
    reply = await send(world, A, B, "a1")
    await world.online(B)
    await recall(world, A, reply.message_id)
    await recall(world, A, reply.message_id)
    assert [p["type"] for p in world.outbox.received_by(B, "d1")] == ["message.recalled"]
    assert (await history(world, B)).messages == []


async def test_a_retried_send_does_not_bring_a_recalled_message_back(world, db):
    """The client repeats a send (same client_msg_id) after the message was recalled: the reply is
    the first one, but the recalled message must not be pushed again as `message.new`."""
    first = await send(world, A, B, "a1", text="oops")
    await recall(world, A, first.message_id)
    await world.online(B, "phone")
    world.outbox.clear()

    again = await send(world, A, B, "a1", text="oops")

    assert again == first
    assert await db["messages"].count_documents({}) == 1
    assert world.pushes(B, "phone", "message.new") == []


# --- typing ------------------------------------------------------------------------------------
async def test_typing_is_for_participants_only(world):
    await send(world, A, B, "a1")
    await world.online(A)
    for conversation_id in (AB, "d_doesnotexist"):
        assert (await refusal(typing(world, C, conversation_id))).code == ErrorCode.FORBIDDEN
    assert world.outbox.sent == []


async def test_typing_reaches_the_other_members_online_but_not_the_typer(world, db):
    group_id, conversation_id = await create_group(world, A, [B, C])
    await world.online(A, "phone", "gw1", "c1")
    await world.online(A, "laptop", "gw2", "c2")
    await world.online(B, "phone", "gw1", "c3")
    await world.online(B, "tablet", "gw2", "c4")
    await world.online(D, "phone", "gw1", "c5")  # not a member; C is offline
    world.outbox.clear()

    await typing(world, A, conversation_id)

    notice = [{"type": "typing", "data": {"conversation_id": conversation_id, "user_id": A}}]
    assert world.outbox.received_by(B, "phone") == notice
    assert world.outbox.received_by(B, "tablet") == notice
    assert world.outbox.received_by(A, "phone") == []
    assert world.outbox.received_by(A, "laptop") == []
    assert world.outbox.received_by(D, "phone") == []
    assert await db["messages"].count_documents({}) == 0
    assert (await world.stored_conversation(conversation_id))["last_seq"] == 0


async def test_typing_again_within_the_window_pushes_nothing(world):
    await send(world, A, B, "a1")
    await world.online(A)
    await world.online(B)
    world.outbox.clear()

    await typing(world, A, AB)
    await typing(world, A, AB)
    await typing(world, B, AB)  # the window is per user

    assert world.pushes(B, "d1", "typing") == [{"conversation_id": AB, "user_id": A}]
    assert world.pushes(A, "d1", "typing") == [{"conversation_id": AB, "user_id": B}]


async def test_typing_after_the_window_pushes_again(world):
    """A window of a second: the second notice must come within it (a window of 0.2 s was a bet
    on two Redis round trips); after it, typing again pushes, waited for rather than timed."""
    assert world.typing.window_ms == 1000  # chat's throttle, as the service builds it
    await send(world, A, B, "a1")
    await world.online(B)
    world.outbox.clear()

    await typing(world, A, AB)
    await typing(world, A, AB)
    assert len(world.pushes(B, "d1", "typing")) == 1
    await asyncio.sleep(1.0)  # the window, since the first notice, has passed

    async def pushed_again() -> bool:
        await typing(world, A, AB)
        return len(world.pushes(B, "d1", "typing")) > 1

    await eventually(pushed_again, "typing after the window pushes again")
    assert world.pushes(B, "d1", "typing") == [{"conversation_id": AB, "user_id": A}] * 2
