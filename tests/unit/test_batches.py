"""Batches (issue 12): chat's side (services/chat/domain/sending.py) on a real database and Redis,
asked through chat's router as the gateway sends its batches, and the gateway's batcher
(services/gateway/batching.py) that forms them."""
import asyncio

import pytest

from services.chat.domain.records import Cursor
from shared.partitions import direct_conversation_id
from services.gateway.batching import Batcher
from shared.contracts import chat
from shared.contracts.base import Empty, utc_now
from shared.contracts.batches import Deliveries, ItemResult
from shared.contracts.errors import ErrorCode, ParleyError
from tests.unit.world import chat_world

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings) as world:
        for friend in (B, C):
            await world.befriend(A, friend)
        yield world


def item(sender: str, to: str, client_msg_id: str, text: str = "hi", device: str = "d1") -> tuple[str, str, dict]:
    """One message.send of a `chat.messages.send` batch (world.send_items)."""
    return sender, device, {"to": {"user_id": to}, "client_msg_id": client_msg_id, "text": text}



async def stored_texts(db, conversation_id):
    return [(d["seq"], d["text"]) async for d in db["messages"].find({"conversation_id": conversation_id}).sort("seq")]


# --- chat: one batch, many items ---------------------------------------------------------------
async def test_a_refused_item_answers_that_item_only_and_the_rest_keep_their_order(world, db):
    outcomes = await world.send_items([
        item(A, B, "m1", "one"), item(A, D, "x1", "to a stranger"), item(A, B, "m2", "two"),
        item(A, A, "x2", "to myself"), item(A, B, "m3", "three"),
    ])
    assert [o.code if isinstance(o, ParleyError) else o.seq for o in outcomes] == [
        1, ErrorCode.FORBIDDEN, 2, ErrorCode.BAD_REQUEST, 3,
    ]
    assert await stored_texts(db, direct_conversation_id(A, B)) == [(1, "one"), (2, "two"), (3, "three")]
    assert await db["messages"].count_documents({"text": {"$in": ["to a stranger", "to myself"]}}) == 0


async def test_a_retry_inside_a_batch_gets_the_first_reply_and_is_stored_once(world, db):
    first, again, other = await world.send_items([item(A, B, "m1", "once"), item(A, B, "m1", "once"), item(A, B, "m2")])
    assert isinstance(first, chat.MessageSendReply) and isinstance(again, chat.MessageSendReply)
    assert (again.message_id, again.seq) == (first.message_id, first.seq)
    assert other.seq == first.seq + 1
    assert await stored_texts(db, direct_conversation_id(A, B)) == [(1, "once"), (2, "hi")]
    # and a retry in a later batch of something stored earlier:
    (later,) = await world.send_items([item(A, B, "m1", "once")])
    assert later.message_id == first.message_id


async def test_a_batch_spanning_conversations_and_gateways_makes_one_broker_message_per_gateway(world):
    await world.online(B, "phone", gateway_id="gw1", conn_id="c1")
    await world.online(C, "laptop", gateway_id="gw2", conn_id="c2")
    await world.online(A, "tablet", gateway_id="gw1", conn_id="c3")  # the sender's other device
    world.outbox.clear()
    outcomes = await world.send_items([item(A, B, "m1", "b1"), item(A, C, "m2", "c1"), item(A, B, "m3", "b2")])
    assert all(isinstance(o, chat.MessageSendReply) for o in outcomes)
    assert sorted(g for g, _ in world.outbox.messages) == ["gw1", "gw2"]
    gw1 = next(m for g, m in world.outbox.messages if g == "gw1")
    assert isinstance(gw1, Deliveries) and len(gw1.items) == 3  # one per message with a device there
    assert [p["data"]["text"] for p in world.outbox.received_by(B, "phone")] == ["b1", "b2"]
    assert [p["data"]["text"] for p in world.outbox.received_by(C, "laptop")] == ["c1"]
    assert [p["data"]["text"] for p in world.outbox.received_by(A, "tablet")] == ["b1", "c1", "b2"]
    assert world.outbox.received_by(A, "d1") == []  # the sending device gets its replies instead


async def test_acks_in_one_batch_coalesce_and_a_refused_one_answers_alone(world, db):
    for n in range(1, 4):
        await world.send_items([item(A, B, f"m{n}")])
    ab = direct_conversation_id(A, B)
    outcomes = await world.ack_items([
        (B, "phone", ab, 2), (C, "pc", ab, 1), (B, "phone", ab, 3), (B, "phone", ab, 1), (B, "phone", ab, 9),
    ])
    assert [type(o).__name__ if not isinstance(o, ParleyError) else o.code for o in outcomes] == [
        "Empty", ErrorCode.FORBIDDEN, "Empty", "Empty", ErrorCode.BAD_REQUEST,
    ]
    assert await world.cursors.of_device(B, "phone") == {ab: 3}  # never moved back by the late seq 1
    assert await world.cursors.of_device(C, "pc") == {}


# --- the gateway's batcher ------------------------------------------------------------------
class Chat:
    """What the batcher sends to: records each batch and answers when the test says so."""

    def __init__(self, refuse: set[str] = frozenset()):
        self.batches: list[list[str]] = []
        self.release: list[asyncio.Event] = []
        self.refuse = refuse

    async def __call__(self, items: list[str]) -> list[ItemResult]:
        self.batches.append(items)
        gate = asyncio.Event()
        self.release.append(gate)
        await gate.wait()
        return [
            ItemResult.of(ParleyError.forbidden(f"{i} refused") if i in self.refuse else Empty()) for i in items
        ]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_socket_has_one_batch_out_and_its_later_items_follow_in_order():
    chat = Chat()
    batcher: Batcher[str] = Batcher("test", chat, max_items=100, max_in_flight=8, one_per_socket=True)
    first = asyncio.create_task(batcher.submit("s1", "a1"))
    await settle()
    later = [asyncio.create_task(batcher.submit("s1", f"a{n}")) for n in (2, 3)]
    other = asyncio.create_task(batcher.submit("s2", "b1"))
    await settle()
    # s1's a2 and a3 wait for a1's batch; s2 does not wait for s1.
    assert chat.batches == [["a1"], ["b1"]]
    chat.release[0].set()
    await settle()
    assert chat.batches == [["a1"], ["b1"], ["a2", "a3"]]
    for gate in chat.release:
        gate.set()
    assert await asyncio.gather(first, *later, other) == [{}, {}, {}, {}]


async def test_a_refused_item_fails_alone_and_a_failed_batch_answers_every_item_unavailable():
    chat = Chat(refuse={"a2"})
    batcher: Batcher[str] = Batcher("test", chat, max_items=100, max_in_flight=8, one_per_socket=True)
    waits = [asyncio.create_task(batcher.submit("s1", f"a{n}")) for n in (1, 2, 3)]
    await settle()
    chat.release[0].set()
    results = await asyncio.gather(*waits, return_exceptions=True)
    assert results[0] == {} and results[2] == {}
    assert isinstance(results[1], ParleyError) and results[1].code == ErrorCode.FORBIDDEN

    async def broker_away(items: list[str]) -> list[ItemResult]:
        raise ConnectionResetError("broker gone")

    failing: Batcher[str] = Batcher("test", broker_away, max_items=100, max_in_flight=8, one_per_socket=True)
    results = await asyncio.gather(*(failing.submit(f"s{n}", "x") for n in range(3)), return_exceptions=True)
    assert [r.code for r in results] == [ErrorCode.UNAVAILABLE] * 3


async def test_under_load_items_wait_for_a_free_slot_and_go_as_one_bigger_batch():
    chat = Chat()
    batcher: Batcher[str] = Batcher("test", chat, max_items=3, max_in_flight=1, one_per_socket=False)
    waits = [asyncio.create_task(batcher.submit("s1", "i0"))]
    await settle()
    waits += [asyncio.create_task(batcher.submit(f"s{n}", f"i{n}")) for n in range(1, 6)]
    await settle()
    assert chat.batches == [["i0"]] and batcher.waiting == 5
    chat.release[0].set()
    await settle()
    assert chat.batches[1] == ["i1", "i2", "i3"]  # at most max_items
    chat.release[1].set()
    await settle()
    assert chat.batches[2] == ["i4", "i5"]
    chat.release[2].set()
    assert await asyncio.gather(*waits) == [{}] * 6


async def test_when_a_batch_fails_the_items_of_its_sockets_waiting_behind_it_fail_too():
    """Sent on, s1's later item would be stored ahead of the failed one its device sends again."""
    chat = Chat()
    calls = 0
    # The first batch fails when the test says so: once a2 waits behind it (a fixed sleep here
    # was a bet that the loop reaches a2 before the sleep ends).
    connection_goes = asyncio.Event()

    async def first_fails(items: list[str]) -> list[ItemResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await connection_goes.wait()
            raise ConnectionResetError("chat's connection went")
        return await chat(items)

    batcher: Batcher[str] = Batcher("test", first_fails, max_items=100, max_in_flight=8, one_per_socket=True)
    early = asyncio.create_task(batcher.submit("s1", "a1"))
    await settle()
    later = asyncio.create_task(batcher.submit("s1", "a2"))
    other = asyncio.create_task(batcher.submit("s2", "b1"))
    await settle()
    assert batcher.waiting == 1  # a2, behind a1's batch
    connection_goes.set()
    results = await asyncio.gather(early, later, return_exceptions=True)
    assert [r.code for r in results] == [ErrorCode.UNAVAILABLE] * 2
    assert chat.batches == [["b1"]]  # s2 was not behind s1's batch: it went
    chat.release[0].set()
    assert await other == {}


async def test_cursors_found_by_id_prefix_keep_devices_and_users_apart(world):
    """Device ids may hold "|": the prefix range of `user|dev|` also covers `user|dev|x|...`."""
    cursors = world.cursors
    await cursors.advance_many([Cursor(B, "dev", "c1", 5), Cursor(B, "dev|x", "c2", 7), Cursor(C, "dev", "c1", 9)])
    assert await cursors.of_device(B, "dev") == {"c1": 5}
    assert await cursors.of_device(B, "dev|x") == {"c2": 7}
    for device in ("dev", "dev|x"):
        await cursors.begin_sync(B, device, utc_now())
    await cursors.begin_sync(C, "dev", utc_now())
    assert await cursors.highest_of_user(B, ["c1", "c2"]) == {"c1": 5, "c2": 7}
