"""Receipts that last, mentions, and a sync catching up on changes (docs/protocol.md "Edit, reply,
reactions, mentions, burn after reading, delete for me, receipts"), on chat's real stores:
delivered markers moved by the acks' batch (and what that batch costs the database), `read_by` /
`delivered_to` in conversations.list and history.fetch, `unread_mentions`, and `message.changed` /
`message.burned` / `message.recalled` for held messages that changed while a device was away."""
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.chat.domain import interactions
from services.chat.domain.messaging import SYNC_CLOCK_MARGIN
from shared.partitions import direct_conversation_id
from services.chat.service import ChatService
from services.chat.storage.cursors import CursorStore
from services.chat.storage.messages import CHANGED_INDEX
from shared.contracts import chat
from shared.contracts import conversations as contract
from shared.contracts.base import Empty, utc_now
from shared.declared import Runtime
from tests.unit.helpers import profile
from tests.unit.world import ChatWorld, chat_world

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"
AB = direct_conversation_id(A, B)


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *(profile(u) for u in (A, B, C, D))) as world:
        await world.befriend(A, B)
        yield world


# --- the operations, asked as a client's commands arrive -----------------------------------------
async def send(world, sender, to, client_msg_id, text="hi", device="d1", **extra) -> chat.MessageSendReply:
    target = {"group": to} if to.startswith("g_") else {"to": to}
    return await world.send(sender, **target, device=device, client_msg_id=client_msg_id, text=text, **extra)


def ack_item(user, device, seq, conversation_id=AB) -> tuple[str, str, str, int]:
    return user, device, conversation_id, seq


async def entry(world, user, conversation_id=AB) -> contract.ConversationEntry:
    reply = await world.ask(user, "conversations.list")
    [found] = [e for e in reply.conversations if e.conversation_id == conversation_id]
    return found


async def history(world, user, conversation_id=AB) -> chat.HistoryReply:
    return await world.ask(user, "history.fetch", conversation_id=conversation_id)


async def read(world, user, seq, conversation_id=AB):
    await world.ask(user, "message.read", conversation_id=conversation_id, seq=seq)



async def create_group(world, creator, member_ids) -> tuple[str, str]:
    reply = await world.ask(creator, "groups.create", name="team", member_ids=member_ids)
    return reply.group_id, reply.conversation_id


def positions(found) -> dict[str, int]:
    return {p.user_id: p.seq for p in found}


def receipts(world, user, device="d1") -> list[dict]:
    return world.pushes(user, device, "receipt.delivered")


def types(world, user, device) -> list[str]:
    return world.push_types(user, device)


# --- delivered markers and receipt.delivered -----------------------------------------------------
async def test_the_first_device_to_ack_moves_the_marker_and_the_sender_hears_it_once(world) -> None:
    for n in range(1, 4):
        await send(world, A, B, f"m{n}")
    await world.online(A, "d1")
    await world.ack(B, AB, 2, device="phone")
    assert receipts(world, A) == [{"conversation_id": AB, "user_id": B, "seq": 2}]
    await world.ack_items([ack_item(B, "laptop", 2), ack_item(B, "laptop", 1)])  # B's second device: nothing new
    await world.ack(B, AB, 2, device="phone")  # again: nothing new
    assert len(receipts(world, A)) == 1
    await world.ack(B, AB, 3, device="laptop")  # the other device is now ahead: it moves again
    assert receipts(world, A)[1:] == [{"conversation_id": AB, "user_id": B, "seq": 3}]
    assert receipts(world, B, "phone") == []  # not to the acknowledging user
    assert positions((await entry(world, A)).delivered_to) == {B: 3}


async def test_one_batch_pushes_one_receipt_per_user_and_conversation_at_its_highest(world) -> None:
    await world.befriend(A, C)
    ac = direct_conversation_id(A, C)
    for n in range(1, 4):
        await send(world, A, B, f"b{n}")
        await send(world, A, C, f"c{n}")
    await world.online(A, "d1")
    items = [
        ack_item(B, "phone", 1), ack_item(B, "laptop", 3), ack_item(B, "phone", 2),
        ack_item(C, "pc", 2, ac), ack_item(C, "pc", 9, ac),  # the last one is refused: beyond the last message
    ]
    outcomes = await world.ack_items(items)
    assert [o for o in outcomes][:4] == [Empty()] * 4
    assert sorted((r["user_id"], r["seq"]) for r in receipts(world, A)) == [(B, 3), (C, 2)]
    # One broker message to the gateway holds both.
    assert len([m for m in world.outbox.messages]) == 1


class Commands(monitoring.CommandListener):
    """The database commands a client sends: (name, collection, filter of a find)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "update", "insert", "delete", "aggregate", "findAndModify"):
            command = event.command
            self.seen.append((event.command_name, str(command.get(event.command_name)), dict(command.get("filter") or {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


@asynccontextmanager
async def watched(world, mongo_url: str, db) -> AsyncIterator[tuple[ChatWorld, Commands]]:
    """chat as `world` runs it (same database, presence, pushes and ports), built on a client that
    records the database commands it sends from here on: another replica, watched."""
    commands = Commands()
    client = AsyncMongoClient(mongo_url, tz_aware=True, event_listeners=[commands])
    try:
        service = await ChatService.build(
            Runtime(world.settings, client[db.name], world.rt.redis), presence=world.presence, deliver=world.deliver,
            events=world.events, profiles=world.profiles, files=world.files, device_keys=world.device_keys,
        )
        commands.seen.clear()  # building it ensured indexes: not what is watched
        try:
            yield ChatWorld(service, world.outbox, world.events, world.profiles, world.files, world.device_keys), commands
        finally:
            await service.close()
    finally:
        await client.close()


async def test_acks_are_written_once_a_flush_not_once_an_ack(world, mongo_url, db) -> None:
    """The ack path (issue 12's hot path, issue 26's coalescing): a replica that has not seen the
    conversations or markers reads each once; then acks cost no database command at all until the
    flush writes every cursor and marker that moved in one bulk write. Reads see the positions
    before they are written."""
    await world.befriend(A, C)
    for n in range(1, 4):
        await send(world, A, B, f"b{n}")
        await send(world, A, C, f"c{n}")
    ac = direct_conversation_id(A, C)
    await world.messages.record_last_seqs()  # the sending replica's flush, a second later
    async with watched(world, mongo_url, db) as (replica, commands):
        first = [ack_item(B, d, s) for d in ("phone", "laptop") for s in (1, 2)] + [ack_item(C, "pc", 2, ac)]
        assert await replica.ack_items(first) == [Empty()] * len(first)
        assert [(name, collection) for name, collection, _ in commands.seen] == [
            ("find", "conversations"), ("find", "devices"), ("find", "cursors"),
        ]
        commands.seen.clear()
        later = [ack_item(B, "phone", 3), ack_item(C, "pc", 3, ac)]
        assert await replica.ack_items(later) == [Empty()] * len(later)
        assert commands.seen == []  # known conversations and markers: nothing read, nothing written yet
        assert await replica.service.cursors.of_device(B, "phone") == {AB: 3}
        assert await db["cursors"].count_documents({}) == 0
        commands.seen.clear()
        await replica.service.cursors.pending.flush()
        assert [(name, collection) for name, collection, _ in commands.seen] == [("update", "cursors")]
    stored = {d["_id"]: d["seq"] async for d in db["cursors"].find()}
    assert stored[f"{B}|phone|{AB}"] == 3 and stored[f"{B}|laptop|{AB}"] == 2 and stored[f"{C}|pc|{ac}"] == 3


async def test_positions_are_read_through_indexes(world, mongo_url, db) -> None:
    """A conversation's markers: no read of them scans a collection (on the embedded server a
    range of _id does, so delivered markers are point reads)."""
    group_id, cid = await create_group(world, A, [B, C, D])
    await send(world, A, group_id, "g1")
    for u in (B, C):
        await world.sync(u, "d1")  # the devices bind (registered), then acknowledge
    await world.ack_items([ack_item(u, "d1", 1, cid) for u in (B, C)])
    await read(world, B, 1, cid)
    await world.service.cursors.pending.flush()
    commands = Commands()
    client = AsyncMongoClient(mongo_url, tz_aware=True, event_listeners=[commands])
    try:  # the store's read itself (what conversations.list and history.fetch read them with)
        read_markers, delivered = await CursorStore(client[db.name]).positions(cid, [B, C, D])
        assert (read_markers, delivered) == ({B: 1}, {B: 1, C: 1})
        assert len(commands.seen) == 3  # read markers; the users' devices, then their cursors
        for _, collection, query in commands.seen:
            plan = await db[collection].find(query).explain()
            assert "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"]), (collection, query)
    finally:
        await client.close()


# --- read_by and delivered_to ------------------------------------------------------------------
async def test_a_direct_chat_lists_the_peers_positions_in_the_list_and_in_history(world) -> None:
    for n in range(1, 5):
        await send(world, A, B, f"m{n}")
    assert (await entry(world, A)).read_by == [] and (await entry(world, A)).delivered_to == []
    await world.ack(B, AB, 4, device="phone")
    await read(world, B, 2)
    listed = await entry(world, A)
    assert positions(listed.read_by) == {B: 2} and positions(listed.delivered_to) == {B: 4}
    fetched = await history(world, A)
    assert positions(fetched.read_by) == {B: 2} and positions(fetched.delivered_to) == {B: 4}
    # B sees A's positions, not their own: A never acknowledged nor read anything here.
    assert (await entry(world, B)).read_by == [] and (await history(world, B)).delivered_to == []


async def test_a_group_lists_every_other_members_position_and_not_those_who_left(world) -> None:
    group_id, cid = await create_group(world, A, [B, C, D])
    for n in range(1, 6):
        await send(world, A, group_id, f"g{n}")
    await world.ack_items([ack_item(B, "d1", 5, cid), ack_item(C, "d1", 4, cid), ack_item(D, "d1", 3, cid)])
    await read(world, B, 5, cid)
    await read(world, C, 3, cid)
    listed = await entry(world, A, cid)
    assert positions(listed.read_by) == {B: 5, C: 3}  # "read by 2 of 3" at seq 3, "1 of 3" at 5
    assert positions(listed.delivered_to) == {B: 5, C: 4, D: 3}
    assert positions((await entry(world, B, cid)).read_by) == {C: 3}  # never the viewer's own
    await world.ask(D, "groups.leave", group_id=group_id)
    assert D not in positions((await history(world, A, cid)).delivered_to)


# --- unread_mentions -----------------------------------------------------------------------------
async def test_unread_mentions_count_unread_visible_messages_that_mention_me(world) -> None:
    group_id, cid = await create_group(world, A, [B, C])
    await send(world, A, group_id, "g1", mentions=[C])
    await send(world, A, group_id, "g2")
    third = await send(world, B, group_id, "g3", mentions=[C, A])
    await send(world, C, group_id, "g4", mentions=[C])  # my own: not unread, not a mention
    await send(world, A, group_id, "g5", mentions=[B])
    listed = await entry(world, C, cid)
    assert (listed.unread, listed.unread_mentions) == (4, 2)
    assert (await entry(world, A, cid)).unread_mentions == 1
    await world.ask(C, "message.hide", message_id=third.message_id)
    assert (await entry(world, C, cid)).unread_mentions == 1  # hidden for me: not counted
    await read(world, C, 1, cid)
    after_read = await entry(world, C, cid)
    assert (after_read.unread, after_read.unread_mentions) == (2, 0)  # g2 and g5; g3 hidden


# --- a sync catching up on changes ---------------------------------------------------------------
async def held_by_b(world, n: int) -> list[chat.MessageSendReply]:
    """A sends n messages; B's phone syncs them, acknowledges them and goes away."""
    sent = [await send(world, A, B, f"m{i}", text=f"text {i}") for i in range(1, n + 1)]
    assert await world.sync(B, "phone") == n
    await world.ack(B, AB, n, device="phone")
    await world.service.cursors.pending.flush()  # written, as a second after (other replicas read it)
    world.outbox.clear()
    return sent


async def test_an_offline_device_gets_edits_reactions_and_recalls_without_a_second_message_new(world, db) -> None:
    sent = await held_by_b(world, 4)
    await world.ask(A, "message.edit", message_id=sent[0].message_id, text="fixed")
    await world.ask(A, "reaction.add", message_id=sent[1].message_id, emoji="👍")
    await world.ask(A, "message.recall", message_id=sent[2].message_id)
    new = await send(world, A, B, "m5", text="text 5")

    assert await world.sync(B, "phone") == 1
    pushes = world.outbox.received_by(B, "phone")
    assert [(p["type"], p["data"].get("seq")) for p in pushes] == [
        ("message.new", new.seq),
        ("message.changed", 1),
        ("message.changed", 2),
        ("message.recalled", None),
        ("sync.done", None),
    ]
    changed = {p["data"]["seq"]: p["data"] for p in pushes if p["type"] == "message.changed"}
    assert changed[1]["text"] == "fixed" and changed[1]["edited_at"]
    assert changed[2]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [A]}]
    assert pushes[3]["data"] == {"conversation_id": AB, "message_id": sent[2].message_id}

    # Time passes (past the clock margin) with nothing changed: the next sync has nothing to
    # catch up on.
    await world.ack(B, AB, new.seq, device="phone")
    device = await db["devices"].find_one({"_id": f"{B}|phone"})
    long_before = device["synced_at"] - SYNC_CLOCK_MARGIN - timedelta(seconds=1)
    await db["messages"].update_many({"changed_at": {"$exists": True}}, {"$set": {"changed_at": long_before}})
    world.outbox.clear()
    assert await world.sync(B, "phone") == 0
    assert types(world, B, "phone") == ["sync.done"]


async def test_changes_above_the_cursor_come_as_the_new_message_itself(world) -> None:
    sent = await held_by_b(world, 2)
    await send(world, A, B, "m3", text="draft")
    draft = await world.messages.by_client_msg_id(direct_conversation_id(A, B), A, "m3")
    await world.ask(A, "message.edit", message_id=draft.message_id, text="final")
    await world.sync(B, "phone")
    pushes = world.outbox.received_by(B, "phone")
    assert [p["type"] for p in pushes] == ["message.new", "sync.done"]
    assert pushes[0]["data"]["text"] == "final"
    assert sent  # held ones unchanged: no message.changed


async def test_a_burned_message_is_sent_as_burned_and_a_hidden_one_not_at_all(world) -> None:
    burning = await send(world, A, B, "b1", text="secret", burn_seconds=5)
    kept = await send(world, A, B, "k1", text="kept")
    await world.sync(B, "phone")
    await world.ack(B, AB, kept.seq, device="phone")
    world.outbox.clear()
    await world.ask(B, "message.open", message_id=burning.message_id, device="laptop")
    # Burning is chat's periodic job, not a command: asked directly, with a clock past the timer.
    await interactions.burn_due(utc_now() + timedelta(seconds=6), world)
    await world.ask(A, "reaction.add", message_id=kept.message_id, emoji="🎉")
    await world.ask(B, "message.hide", message_id=kept.message_id, device="laptop")
    world.outbox.clear()
    await world.sync(B, "phone")
    assert world.outbox.received_by(B, "phone") == [
        {"type": "message.burned", "data": {"conversation_id": AB, "message_id": burning.message_id}},
        {"type": "sync.done", "data": {"count": 0}},
    ]


async def test_an_opened_burn_message_is_sent_sealed_to_the_recipient_and_whole_to_the_sender(world) -> None:
    burning = await send(world, A, B, "b1", text="secret", burn_seconds=600)
    await world.sync(A, "d1")
    await world.sync(B, "phone")
    await world.ack_items([ack_item(A, "d1", burning.seq), ack_item(B, "phone", burning.seq)])
    await world.ask(B, "message.open", message_id=burning.message_id, device="laptop")
    world.outbox.clear()
    await world.sync(B, "phone")
    await world.sync(A, "d1")
    [to_b] = [p["data"] for p in world.outbox.received_by(B, "phone") if p["type"] == "message.changed"]
    [to_a] = [p["data"] for p in world.outbox.received_by(A, "d1") if p["type"] == "message.changed"]
    assert "text" not in to_b and to_b["burn"]["opened_at"] and to_b["burn"]["burns_at"]
    assert to_a["text"] == "secret" and to_a["burn"]["opened_at"]


async def test_a_new_device_has_nothing_to_catch_up_and_a_change_just_before_the_last_sync_comes_again(world, db) -> None:
    sent = await held_by_b(world, 2)
    await world.ask(A, "message.edit", message_id=sent[0].message_id, text="fixed")
    await world.sync(B, "tablet")  # first seen: starts at B's cursor, holds nothing before it
    assert types(world, B, "tablet") == ["sync.done"]
    # Another replica's clock ran a little behind: its change is stamped just before the phone's
    # last sync started. It is sent (again) all the same, within the margin.
    await world.sync(B, "phone")
    device = await db["devices"].find_one({"_id": f"{B}|phone"})
    stamp = device["synced_at"] - SYNC_CLOCK_MARGIN + timedelta(seconds=1)
    await db["messages"].update_one({"_id": sent[1].message_id}, {"$set": {"text": "changed elsewhere", "changed_at": stamp}})
    world.outbox.clear()
    await world.sync(B, "phone")
    changed = [p["data"] for p in world.outbox.received_by(B, "phone") if p["type"] == "message.changed"]
    assert [(c["seq"], c["text"]) for c in changed] == [(1, "fixed"), (2, "changed elsewhere")]


async def test_a_device_registered_before_syncs_were_recorded_catches_up_since_first_seen(world, db) -> None:
    sent = await held_by_b(world, 1)
    await db["devices"].update_one({"_id": f"{B}|phone"}, {"$unset": {"synced_at": ""}})
    await world.ask(A, "message.edit", message_id=sent[0].message_id, text="fixed")
    await world.sync(B, "phone")
    assert types(world, B, "phone") == ["message.changed", "sync.done"]


async def test_a_group_member_is_not_told_of_changes_to_messages_from_before_they_joined(world) -> None:
    group_id, cid = await create_group(world, A, [B])
    before = await send(world, A, group_id, "g1", text="before")
    await world.ask(A, "groups.add_members", group_id=group_id, user_ids=[C])
    after = await send(world, A, group_id, "g2", text="after")
    await world.sync(C, "d1")
    await world.ack(C, cid, after.seq)
    for sent in (before, after):
        await world.ask(A, "message.edit", message_id=sent.message_id, text="edited")
    world.outbox.clear()
    await world.sync(C, "d1")
    assert [p["data"]["seq"] for p in world.outbox.received_by(C, "d1") if p["type"] == "message.changed"] == [after.seq]


async def test_changes_are_read_through_the_changed_index(world) -> None:
    """An index range of changed messages, not a scan of the conversation (the embedded
    server's planner passes partial indexes by: the read names it)."""
    sent = await held_by_b(world, 3)
    await world.ask(A, "reaction.add", message_id=sent[2].message_id, emoji="👍")
    since = utc_now() - timedelta(minutes=1)
    query = {"conversation_id": AB, "changed_at": {"$gt": since}}
    plan = await world.messages.messages.find(query).hint(CHANGED_INDEX).explain()
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])
    assert [m.seq for m in await world.messages.changed_since(AB, since, 3)] == [3]
    assert await world.messages.changed_since(AB, since, 2) == []


async def sync_watched(world, mongo_url: str, db, device_id: str) -> tuple[int, list[tuple[str, dict]]]:
    """B's device syncs through a client that records its commands: how many messages it
    streamed, and the (collection, filter) of every find it sent to cursors or devices."""
    async with watched(world, mongo_url, db) as (replica, commands):
        streamed = await replica.sync(B, device_id)
    return streamed, [(c, q) for name, c, q in commands.seen if name == "find" and c in ("cursors", "devices")]


async def assert_no_scan(db, reads: list[tuple[str, dict]]) -> None:
    for collection, query in reads:
        plan = await db[collection].find(query).explain()
        assert "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"]), (collection, query)


async def test_a_devices_cursors_are_read_by_id_on_sync(world, mongo_url, db) -> None:
    """The sync reads the device's cursors of the user's conversations as point reads: no read
    of the cursors collection on a sync scans it (a range of _id would, on the embedded server)."""
    await held_by_b(world, 2)
    _, reads = await sync_watched(world, mongo_url, db, "phone")
    cursor_reads = [(c, q) for c, q in reads if c == "cursors"]
    assert cursor_reads
    await assert_no_scan(db, cursor_reads)


async def test_a_new_device_starts_where_the_users_devices_are_without_scanning(world, mongo_url, db) -> None:
    """A device's first bind starts at the highest seq any of the user's devices acknowledged,
    read by _id point reads over the user's devices and conversations (before: an _id prefix
    range, a scan of the whole cursors collection on the embedded server)."""
    await held_by_b(world, 3)
    streamed, reads = await sync_watched(world, mongo_url, db, "tablet")
    assert streamed == 0  # the phone had them all: nothing new for the tablet
    assert await world.cursors.of_device(B, "tablet") == await world.cursors.of_device(B, "phone")
    assert any(c == "devices" for c, _ in reads)
    await assert_no_scan(db, reads)
