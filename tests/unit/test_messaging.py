"""services/chat/domain/messaging.py: send, ack, history and the bind-time sync stream, asked
through chat's router as a client's command (or the gateway's batch of them) arrives."""
import asyncio
from types import SimpleNamespace

import pytest

from shared.partitions import direct_conversation_id
from shared import delivery
from shared.contracts import chat
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from tests.unit.world import chat_world

A, B, C = "u_alice", "u_bob", "u_carol"
CONV = direct_conversation_id(A, B)


@pytest.fixture
def overrides() -> dict:
    """chat's settings for the test (a test parametrizes it to change one)."""
    return {}


@pytest.fixture
async def world(db, settings, overrides):
    async with chat_world(db, settings, **overrides) as world:
        yield world


@pytest.fixture
async def friends(world):
    await world.befriend(A, B)
    return world


async def send(world, sender, to, client_msg_id, text="hi", device="d1", **extra):
    return await world.send(sender, to, device=device, client_msg_id=client_msg_id, text=text, **extra)


async def send_many(world, n, sender=A, to=B, prefix="m"):
    return [await send(world, sender, to, f"{prefix}{i}", text=f"text {i}") for i in range(1, n + 1)]


async def history(world, user, before_seq=None, limit=50, conversation_id=CONV):
    request = chat.HistoryFetch(conversation_id=conversation_id, before_seq=before_seq, limit=limit)
    return await world.ask(user, "history.fetch", request)



def code_of(excinfo) -> ErrorCode:
    return excinfo.value.code


# --- sending ---------------------------------------------------------------------------------
async def test_sending_to_a_non_friend_is_forbidden_and_stores_nothing(world, db):
    with pytest.raises(ParleyError) as info:
        await send(world, A, B, "c1")
    assert code_of(info) == ErrorCode.FORBIDDEN
    assert await db["messages"].count_documents({}) == 0
    assert await db["conversations"].count_documents({}) == 0


async def test_a_pending_request_is_not_a_friendship(world, db):
    await world.friendships.add_request(A, B, utc_now())
    with pytest.raises(ParleyError) as info:
        await send(world, A, B, "c1")
    assert code_of(info) == ErrorCode.FORBIDDEN
    assert await db["messages"].count_documents({}) == 0


async def test_sending_to_yourself_is_bad_request(world, db):
    with pytest.raises(ParleyError) as info:
        await send(world, A, A, "c1")
    assert code_of(info) == ErrorCode.BAD_REQUEST
    assert "to.user_id" in info.value.message
    assert await db["messages"].count_documents({}) == 0


async def test_seqs_start_at_one_and_count_up_for_both_senders(friends):
    replies = [
        await send(friends, A, B, "a1"),
        await send(friends, B, A, "b1"),
        await send(friends, A, B, "a2"),
    ]
    assert [r.seq for r in replies] == [1, 2, 3]
    assert {r.conversation_id for r in replies} == {CONV}
    assert len({r.message_id for r in replies}) == 3
    assert all(r.sent_at.endswith("Z") for r in replies)


async def test_stored_message_is_what_history_returns(friends):
    reply = await send(friends, A, B, "a1", text="hello bob")
    [message] = (await history(friends, B)).messages
    assert message.model_dump() == {
        "message_id": reply.message_id,
        "conversation_id": CONV,
        "seq": 1,
        "from_user_id": A,
        "to": {"user_id": B},
        "text": "hello bob",
        "sent_at": reply.sent_at,
    }


async def test_concurrent_sends_from_both_sides_take_seqs_without_gaps(friends, db):
    sends = [send(friends, A if i % 2 else B, B if i % 2 else A, f"c{i}", text=str(i)) for i in range(50)]
    replies = await asyncio.gather(*sends)
    assert sorted(r.seq for r in replies) == list(range(1, 51))
    stored = [d["seq"] async for d in db["messages"].find({"conversation_id": CONV})]
    assert sorted(stored) == list(range(1, 51))
    await friends.messages.record_last_seqs()  # recorded lazily: what the next flush does
    assert (await friends.stored_conversation(CONV))["last_seq"] == 50


async def test_same_client_msg_id_twice_gives_the_first_reply_and_stores_once(friends, db):
    first = await send(friends, A, B, "same", text="once")
    again = await send(friends, A, B, "same", text="once")
    assert again == first
    assert await db["messages"].count_documents({}) == 1
    nxt = await send(friends, A, B, "other")
    assert nxt.seq == 2


async def test_a_retry_racing_its_original_stores_one_message(friends, db):
    replies = await asyncio.gather(*(send(friends, A, B, "racy", text="once") for _ in range(5)))
    assert len(set(replies)) == 1
    assert replies[0].seq == 1
    assert await db["messages"].count_documents({}) == 1
    assert (await send(friends, B, A, "next")).seq == 2


async def test_client_msg_id_is_per_sender(friends):
    mine = await send(friends, A, B, "same")
    theirs = await send(friends, B, A, "same")
    assert (mine.seq, theirs.seq) == (1, 2)


async def test_a_client_msg_id_reused_towards_another_friend_is_another_message(friends, db):
    """Unique per sender within a conversation (docs/protocol.md; the messages' shard key leads
    the index): the same id to C is C's own message, and the message to B still never reaches C."""
    await friends.befriend(A, C)
    await friends.online(C, "phone", "gw1", "c5")
    first = await send(friends, A, B, "same", text="for bob only")

    to_carol = await send(friends, A, C, "same", text="for carol")
    again = await send(friends, A, B, "same", text="for bob only")

    assert to_carol.conversation_id != first.conversation_id and to_carol.message_id != first.message_id
    assert again == first  # a retry in the same conversation still answers as the first send did
    assert await db["messages"].count_documents({}) == 2
    assert [(p["type"], p["data"]["text"]) for p in friends.outbox.received_by(C, "phone")] == [("message.new", "for carol")]


async def test_a_refused_send_is_not_remembered(world, db):
    with pytest.raises(ParleyError):
        await send(world, A, B, "early", text="too soon")
    await world.befriend(A, B)

    reply = await send(world, A, B, "early", text="now we are friends")

    assert reply.seq == 1
    [doc] = [d async for d in db["messages"].find({})]
    assert doc["text"] == "now we are friends"


async def test_online_recipient_and_senders_other_devices_get_message_new(friends):
    await friends.online(B, "phone", "gw1", "c1")
    await friends.online(A, "laptop", "gw2", "c2")  # sender's other device
    await friends.online(A, "phone", "gw1", "c3")  # the sending device
    await friends.online(C, "phone", "gw1", "c4")  # not in the conversation

    reply = await send(friends, A, B, "c1", text="hi bob", device="phone")

    assert [p["type"] for p in friends.outbox.received_by(B, "phone")] == ["message.new"]
    assert [p["type"] for p in friends.outbox.received_by(A, "laptop")] == ["message.new"]
    assert friends.outbox.received_by(A, "phone") == []
    assert friends.outbox.received_by(C, "phone") == []
    pushed = friends.outbox.received_by(B, "phone")[0]["data"]
    assert (pushed["message_id"], pushed["seq"], pushed["text"]) == (reply.message_id, 1, "hi bob")
    by_gateway = {g: {(t.user_id, t.device_id) for t in d.targets} for g, d in friends.outbox.sent}
    assert by_gateway == {"gw1": {(B, "phone")}, "gw2": {(A, "laptop")}}
    assert all(d.conn_id is None and not d.sync for _, d in friends.outbox.sent)


async def test_offline_recipient_gets_no_delivery_but_the_message_is_kept(friends):
    await send(friends, A, B, "c1")
    assert friends.outbox.sent == []
    assert [m.seq for m in (await history(friends, B)).messages] == [1]


async def test_a_push_that_fails_does_not_fail_a_stored_send(friends):
    """The broker refusing the live push: the sender is still told it is stored, and it is."""
    await friends.online(B, "phone")

    async def broker_down(gateway_id, delivery):
        raise ConnectionError("deliver exchange unreachable")

    friends.deliver.publish = broker_down
    reply = await send(friends, A, B, "c1", text="kept anyway")
    assert reply.seq == 1
    assert [m.text for m in (await history(friends, B)).messages] == ["kept anyway"]
    friends.deliver.publish = friends.outbox
    await friends.sync(B, "phone")
    assert [p["data"]["text"] for p in friends.outbox.received_by(B, "phone") if p["type"] == "message.new"] == [
        "kept anyway"
    ]


async def test_pushes_that_fail_are_reported_so_gateways_resync(friends, monkeypatch):
    """Every failed push is followed by a "deliveries lost" report (at most two a second), so
    the gateways sync their sockets again after it; nothing is reported while pushes go out.
    The reports' clock is the test's: with the real one, "five sends within half a second"
    was a bet on how fast this machine stores five messages."""
    clock = [1000.0]
    monkeypatch.setattr(delivery, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    await friends.online(B, "phone")
    reports: list[str] = []

    async def report(why: str) -> None:
        reports.append(why)

    friends.deliver.report_lost = report
    await send(friends, A, B, "ok1")
    assert reports == []

    async def broker_down(gateway_id, delivery):
        raise ConnectionError("deliver exchange unreachable")

    friends.deliver.publish = broker_down
    for i in range(5):
        await send(friends, A, B, f"lost{i}")
    assert len(reports) == 1 and "unreachable" in reports[0]
    clock[0] = 1000.4  # the first report was at 1000.0
    await send(friends, A, B, "lost-soon-after")
    assert len(reports) == 1
    clock[0] = 1000.6
    await send(friends, A, B, "lost-later")
    assert len(reports) == 2


# --- history ---------------------------------------------------------------------------------
async def test_history_pages_back_from_the_newest(friends):
    await send_many(friends, 120)

    newest = await history(friends, B)
    assert [m.seq for m in newest.messages] == list(range(71, 121))
    assert newest.has_more

    middle = await history(friends, B, before_seq=71)
    assert [m.seq for m in middle.messages] == list(range(21, 71))
    assert middle.has_more

    oldest = await history(friends, A, before_seq=21)
    assert [m.seq for m in oldest.messages] == list(range(1, 21))
    assert not oldest.has_more
    assert oldest.messages[0].text == "text 1"


async def test_history_honours_limit(friends):
    await send_many(friends, 10)
    page = await history(friends, A, limit=3)
    assert [m.seq for m in page.messages] == [8, 9, 10]
    assert page.has_more
    page = await history(friends, A, before_seq=4, limit=3)
    assert [m.seq for m in page.messages] == [1, 2, 3]
    assert not page.has_more
    whole = await history(friends, A, limit=10)
    assert len(whole.messages) == 10 and not whole.has_more


async def test_non_participant_cannot_fetch_or_ack(friends):
    await send(friends, A, B, "c1")
    for attempt in (history(friends, C), friends.ack(C, CONV, 1)):
        with pytest.raises(ParleyError) as info:
            await attempt
        assert code_of(info) == ErrorCode.FORBIDDEN


async def test_unknown_conversation_looks_the_same_as_a_foreign_one(friends):
    with pytest.raises(ParleyError) as info:
        await history(friends, A, conversation_id="d_doesnotexist")
    assert code_of(info) == ErrorCode.FORBIDDEN


async def test_ack_beyond_the_last_seq_is_bad_request(friends):
    await send_many(friends, 2)
    with pytest.raises(ParleyError) as info:
        await friends.ack(B, CONV, 3, "phone")
    assert code_of(info) == ErrorCode.BAD_REQUEST
    assert "seq" in info.value.message
    await friends.ack(B, CONV, 2, "phone")
    assert await friends.cursors.of_device(B, "phone") == {CONV: 2}


async def test_ack_of_a_message_stored_just_before_a_crash_is_accepted(friends, db):
    """A replica killed between storing a message and recording the conversation's last_seq:
    the recipient got the message (live or by sync) and acks it; that is no bad request."""
    await send_many(friends, 2)
    await friends.messages.record_last_seqs()
    stored = await db["messages"].find_one({"conversation_id": CONV, "seq": 2})
    await db["messages"].insert_one({**stored, "_id": "m_after_crash", "seq": 3, "client_msg_id": "lost-update"})
    assert (await friends.stored_conversation(CONV))["last_seq"] == 2  # the $max never ran
    await friends.ack(B, CONV, 3, "phone")
    assert (await friends.stored_conversation(CONV))["last_seq"] == 3
    with pytest.raises(ParleyError) as beyond:
        await friends.ack(B, CONV, 4, "phone")
    assert code_of(beyond) == ErrorCode.BAD_REQUEST


async def test_ack_never_moves_a_cursor_back(friends):
    await send_many(friends, 5)
    await friends.ack(B, CONV, 4, "phone")
    await friends.ack(B, CONV, 2, "phone")
    assert await friends.cursors.of_device(B, "phone") == {CONV: 4}


# --- sync on bind ----------------------------------------------------------------------------
def sync_stream(world, user, device):
    """(kind, payload) of every push addressed to the device, checking each went to its socket."""
    out = []
    for _, d in world.outbox.sent:
        if any(t.user_id == user and t.device_id == device for t in d.targets):
            assert d.conn_id == f"c_{device}" and d.sync, d
            out.extend((p.type, p.data) for p in d.pushes)
    return out


@pytest.mark.parametrize("overrides", [{"sync_batch_size": 2}], ids=["sync_batch_size=2"])
async def test_sync_streams_everything_above_the_cursor_in_batches_then_sync_done(friends):
    await send_many(friends, 7)
    await friends.ack(B, CONV, 2, "phone")
    friends.outbox.clear()

    count = await friends.sync(B, "phone")

    assert count == 5
    stream = sync_stream(friends, B, "phone")
    assert [kind for kind, _ in stream] == ["message.new"] * 5 + ["sync.done"]
    assert [data["seq"] for kind, data in stream[:-1]] == [3, 4, 5, 6, 7]
    assert stream[-1][1] == {"count": 5}
    assert len(friends.outbox.sent) == 4  # batches of 2, 2, 1 and the sync.done
    assert all(g == "gw1" for g, _ in friends.outbox.sent)


async def test_sync_after_ack_streams_only_what_is_above_it(friends):
    await send_many(friends, 6)
    await friends.sync(B, "phone")
    assert [d["seq"] for k, d in sync_stream(friends, B, "phone") if k == "message.new"] == [1, 2, 3, 4, 5, 6]

    await friends.ack(B, CONV, 4, "phone")
    friends.outbox.clear()
    count = await friends.sync(B, "phone")

    assert count == 2
    stream = sync_stream(friends, B, "phone")
    assert [(kind, data.get("seq")) for kind, data in stream] == [("message.new", 5), ("message.new", 6), ("sync.done", None)]
    assert stream[-1][1] == {"count": 2}


async def test_unacknowledged_messages_come_back_on_every_sync(friends):
    await send_many(friends, 3)
    await friends.sync(B, "phone")
    friends.outbox.clear()
    assert await friends.sync(B, "phone") == 3


async def test_sync_with_nothing_new_sends_only_sync_done(friends):
    await send_many(friends, 2)
    await friends.ack(B, CONV, 2, "phone")
    assert await friends.sync(B, "phone") == 0
    assert sync_stream(friends, B, "phone") == [("sync.done", {"count": 0})]


async def test_sync_covers_every_conversation_of_the_user(friends):
    await friends.befriend(C, B)
    await send_many(friends, 2, A, B, prefix="a")
    await send_many(friends, 3, C, B, prefix="c")
    assert await friends.sync(B, "phone") == 5
    stream = sync_stream(friends, B, "phone")
    got = sorted((d["conversation_id"], d["seq"]) for k, d in stream if k == "message.new")
    other = direct_conversation_id(B, C)
    assert got == sorted([(CONV, 1), (CONV, 2), (other, 1), (other, 2), (other, 3)])
    for conversation in (CONV, other):  # ascending per conversation
        seqs = [d["seq"] for k, d in stream if k == "message.new" and d["conversation_id"] == conversation]
        assert seqs == sorted(seqs)


async def test_a_new_device_starts_at_the_users_most_advanced_cursor(friends):
    await send_many(friends, 5)
    await friends.sync(B, "phone")
    await friends.sync(B, "tablet")
    await friends.ack(B, CONV, 3, "phone")
    await friends.ack(B, CONV, 4, "tablet")
    await send_many(friends, 1, prefix="late")
    friends.outbox.clear()

    count = await friends.sync(B, "laptop")  # seen for the first time

    assert count == 2
    assert [d["seq"] for k, d in sync_stream(friends, B, "laptop") if k == "message.new"] == [5, 6]
    assert await friends.cursors.of_device(B, "laptop") == {CONV: 4}


async def test_a_users_first_device_gets_everything(friends):
    await send_many(friends, 3)
    assert await friends.sync(B, "phone") == 3


async def test_a_known_device_keeps_its_own_cursor(friends):
    await send_many(friends, 5)
    await friends.sync(B, "phone")
    await friends.sync(B, "tablet")
    await friends.ack(B, CONV, 5, "tablet")
    friends.outbox.clear()
    assert await friends.sync(B, "phone") == 5


async def test_expired_message_is_neither_in_history_nor_in_sync(friends):
    await send(friends, A, B, "keep1", text="stays")
    await send(friends, A, B, "gone", text="disappears", ttl_seconds=1)
    kept = await send(friends, A, B, "keep2", text="stays too", ttl_seconds=3600)
    [message] = [m for m in (await history(friends, B)).messages if m.seq == 2]
    assert message.expires_at is not None

    await asyncio.sleep(1.2)

    page = await history(friends, B)
    assert [m.seq for m in page.messages] == [1, 3]
    assert page.messages[1].expires_at is not None and page.messages[1].message_id == kept.message_id
    assert await friends.sync(B, "phone") == 2
    assert [d["seq"] for k, d in sync_stream(friends, B, "phone") if k == "message.new"] == [1, 3]
    # The seq counter is not reused: the next message still follows the expired one.
    assert (await send(friends, B, A, "after")).seq == 4


async def test_pages_and_sync_batches_stay_full_when_hidden_messages_fill_a_batch(friends):
    """Visibility is filtered after the index range is read: a run of recalled messages longer
    than the limit must neither shorten a page nor end a sync early."""
    replies = await send_many(friends, 12)
    now = utc_now()
    for reply in replies[6:]:  # 7..12 recalled: the newest six
        await friends.messages.recall(reply.message_id, now)
    for reply in replies[:3]:  # and 1..3: the oldest three
        await friends.messages.recall(reply.message_id, now)

    newest = await history(friends, B, limit=2)
    assert [m.seq for m in newest.messages] == [5, 6] and newest.has_more is True
    assert [m.seq for m in (await history(friends, B, before_seq=5, limit=2)).messages] == [4]
    assert [d.seq for d in await friends.messages.above(CONV, 0, 2, utc_now(), top=12)] == [4, 5]
    assert (await friends.messages.latest(CONV, 0, utc_now(), top=12)).seq == 6
    assert await friends.messages.count_unread(CONV, B, 0, utc_now(), top=12) == 3


async def test_a_sync_reads_past_a_last_seq_left_behind(friends):
    """`last_seq` is recorded lazily (storage/appender.py): a chat that died before recording it
    left it behind what is stored. A device syncing then still gets every message."""
    await send_many(friends, 3)
    commit = friends.messages._group_commit
    commit._tops.waiting.clear()  # the crash: what waited in memory is gone
    commit._next_seq.clear()
    assert (await friends.stored_conversation(CONV)).get("last_seq", 0) == 0
    assert await friends.sync(B, "tablet") == 3
