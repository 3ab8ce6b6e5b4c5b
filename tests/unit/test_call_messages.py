"""chat's side of calls (services/chat/domain/call_messages.py), asked through chat's router as
the calls service asks over RPC: who may call whom, and the one message per call, stored once
however often it is asked for."""
import pytest

from shared.partitions import direct_conversation_id
from shared.contracts.base import iso, utc_now
from shared.contracts.calls import CallMessage, CallMessageStored, CallPeer, CallRecord
from shared.contracts.errors import ParleyError
from tests.unit.world import chat_world

A, B, C = "u_alice", "u_bob", "u_carol"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings) as world:
        await world.befriend(A, B)
        await world.online(A, "laptop", conn_id="ca")
        await world.online(B, "phone", conn_id="cb")
        yield world


async def peer(world, **ask) -> CallPeer:
    """What calls asks before ringing (no user of its own: a service's RPC)."""
    return await world.ask(None, "chat.calls.peer", **ask)


async def record(world, message: CallMessage) -> CallMessageStored:
    """What calls asks once a call has ended."""
    return await world.ask(None, "chat.calls.record", message)


def ended_call(conversation_id: str, call_id: str = "call_1") -> CallMessage:
    call = CallRecord(call_id=call_id, media="audio", outcome="completed", duration_seconds=12)
    return CallMessage(conversation_id=conversation_id, caller_id=A, callee_id=B, ended_at=iso(utc_now()), call=call)


async def test_friends_may_call_by_user_id_or_by_their_direct_conversation(world) -> None:
    first = await peer(world, caller_id=A, user_id=B)
    assert first == CallPeer(callee_id=B, conversation_id=direct_conversation_id(A, B))
    assert await world.conversations.conversation(first.conversation_id) is not None  # made on a first call
    assert await peer(world, caller_id=B, conversation_id=first.conversation_id) == CallPeer(
        callee_id=A, conversation_id=first.conversation_id
    )


@pytest.mark.parametrize("ask", [
    {"caller_id": A, "user_id": C},  # not friends
    {"caller_id": A, "user_id": A},  # oneself
    {"caller_id": C, "conversation_id": direct_conversation_id(A, B)},  # not a member
    {"caller_id": A, "conversation_id": "no_such_conversation"},
])
async def test_anyone_else_is_forbidden(world, ask) -> None:
    await peer(world, caller_id=A, user_id=B)
    with pytest.raises(ParleyError) as refused:
        await peer(world, **ask)
    assert refused.value.code == "forbidden"


async def test_a_calls_message_is_stored_once_however_often_asked_and_announced_like_a_message(world) -> None:
    conversation_id = (await peer(world, caller_id=A, user_id=B)).conversation_id
    message = ended_call(conversation_id)
    first = await record(world, message)
    again = await record(world, message)  # a retry, or a deferred record taken twice
    assert isinstance(first, CallMessageStored) and first.first and first.seq == 1
    assert (again.message_id, again.seq, again.first) == (first.message_id, 1, False)
    page, _ = await world.messages.page(conversation_id, None, 50, utc_now(), 10)
    (stored,) = page
    assert stored.from_user_id == A and stored.client_msg_id == "call:call_1" and stored.call == message.call
    for user, device in ((A, "laptop"), (B, "phone")):  # both devices, the caller's too; the same seq
        pushed = world.pushes(user, device, "message.new")
        assert {(p["seq"], p["call"]["call_id"]) for p in pushed} == {(1, "call_1")}
    # messages.stored, as for a sent message (offline push learns of the call); a retry says `again`.
    announced = [c.messages[0] for e in world.events.named("messages.stored") for c in e.conversations]
    assert [(m.kind, m.seq, m.again) for m in announced] == [("call", 1, False), ("call", 1, True)]
    # The next call's message takes the next seq, like any message.
    assert (await record(world, ended_call(conversation_id, "call_2"))).seq == 2


async def test_a_message_for_a_conversation_that_is_not_theirs_is_not_found(world) -> None:
    with pytest.raises(ParleyError) as refused:
        await record(world, ended_call("no_such_conversation"))
    assert refused.value.code == "not_found"
