"""services/calls/domain/signalling.py over the real call store (Redis) and chat (its real
handlers and stores, asked in-process as over RPC): the steps that must happen once happen once,
whoever races, and no call outlives its participants."""
import asyncio
import time
from dataclasses import replace

import pytest

from services.calls.domain import signalling as calls
from services.calls.domain.ports import Call, CallPorts
from services.calls.domain.signalling import outcome_of
from services.calls.remote import ChatOverRpc
from services.calls.storage.call_store import RedisCallStore
from shared.contracts.base import utc_now
from shared.contracts.calls import CallAccept, CallIce, CallInvite, IceCandidate
from shared.contracts.errors import ParleyError
from shared.presence import DeviceSocket
from shared.ratelimit import TokenBucket
from tests.unit.helpers import InProcessRpc, chat_service, chat_world, redis_namespace

A, B = "u_alice", "u_bob"
OFFER = "v=0 offer"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings) as world, redis_namespace(settings) as (redis, namespace):
        await world.befriend(A, B)
        await world.online(A, "laptop", conn_id="ca")
        await world.online(B, "phone", conn_id="cb")
        chat = ChatOverRpc(InProcessRpc(await chat_service(world, settings)))
        world.ports = CallPorts(
            calls=RedisCallStore(redis, namespace), chat=chat, presence=world.presence, deliver=world.deliver,
            invites=TokenBucket(redis, namespace, "call", 1.0, 100), ring_seconds=30,
        )
        yield world


async def ring(world) -> str:
    reply = await calls.invite(CallInvite(user_id=B, media="video", sdp=OFFER), A, "laptop", world.ports)
    assert reply.state == "ringing"
    return reply.call_id


async def stored_calls(world) -> list:
    (conversation,) = await world.conversations.of_user(A)
    page, _ = await world.messages.page(conversation.conversation_id, None, 50, utc_now(), conversation.last_seq)
    return [m.call for m in page if m.call is not None]


async def test_many_replicas_ending_one_call_end_it_once(world) -> None:
    call_id = await ring(world)
    await calls.accept(CallAccept(call_id=call_id, sdp="answer"), B, "phone", world.ports)
    world.outbox.clear()
    await asyncio.gather(*(calls.end_call(call_id, "hangup", A, world.ports) for _ in range(8)))
    for user, device in ((A, "laptop"), (B, "phone")):
        assert [p["type"] for p in world.outbox.received_by(user, device)].count("call.ended") == 1
    (record,) = await stored_calls(world)
    assert record.outcome == "completed" and record.call_id == call_id
    assert await world.ports.calls.get(call_id) is None


async def test_two_devices_accepting_at_once_one_wins(world) -> None:
    await world.online(B, "tablet", conn_id="cb2")
    call_id = await ring(world)
    results = await asyncio.gather(
        calls.accept(CallAccept(call_id=call_id, sdp="from phone"), B, "phone", world.ports),
        calls.accept(CallAccept(call_id=call_id, sdp="from tablet"), B, "tablet", world.ports),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and refused[0].code == "conflict"
    accepted = [p for p in world.outbox.received_by(A, "laptop") if p["type"] == "call.accepted"]
    assert len(accepted) == 1


async def test_a_call_message_the_database_could_not_take_is_stored_later_once(world, monkeypatch) -> None:
    call_id = await ring(world)
    real_append = world.messages.append_many
    failures = 0

    async def database_away(entries):
        nonlocal failures
        failures += 1
        raise ConnectionError("database away")

    monkeypatch.setattr(world.messages, "append_many", database_away)
    await calls.end_call(call_id, "cancelled", A, world.ports)
    assert failures == 1 and await stored_calls(world) == []
    monkeypatch.setattr(world.messages, "append_many", real_append)
    await calls.check_calls(world.ports)
    await calls.check_calls(world.ports)
    (record,) = await stored_calls(world)
    assert record.outcome == "cancelled"


async def test_the_checker_ends_unanswered_calls_and_calls_whose_socket_is_gone(world) -> None:
    ringing = await ring(world)
    call = await world.ports.calls.get(ringing)
    await world.ports.calls.end(ringing)  # start over with a deadline already passed
    late = replace(call, call_id="call_late", ring_until=time.time() - 1)
    assert await world.ports.calls.begin(late) == "ok"
    await calls.check_calls(world.ports)
    assert await world.ports.calls.get("call_late") is None
    ended = [p["data"] for p in world.outbox.received_by(A, "laptop") if p["type"] == "call.ended"]
    assert ended[-1]["reason"] == "timeout"

    live = await ring(world)
    await calls.accept(CallAccept(call_id=live, sdp="answer"), B, "phone", world.ports)
    await calls.check_calls(world.ports)
    assert await world.ports.calls.get(live) is not None  # both sockets there: it goes on
    await world.presence.unbind(DeviceSocket(B, "phone", "gw1", "cb"))
    await calls.check_calls(world.ports)
    assert await world.ports.calls.get(live) is None
    ended = [p["data"] for p in world.outbox.received_by(A, "laptop") if p["type"] == "call.ended"]
    assert ended[-1]["reason"] == "connection_lost" and ended[-1]["by_user_id"] == B


async def test_a_candidate_for_a_call_both_sides_saw_end_is_not_found(world) -> None:
    call_id = await ring(world)
    await calls.accept(CallAccept(call_id=call_id, sdp="answer"), B, "phone", world.ports)
    await calls.hang_up(call_id, B, world.ports)
    await calls.hang_up(call_id, A, world.ports)  # crossing B's: no error, the call is over for both
    candidate = CallIce(call_id=call_id, candidate=IceCandidate(candidate="candidate:1 1 udp 1 10.0.0.1 9 typ host"))
    for user, device in ((A, "laptop"), (B, "phone")):
        with pytest.raises(ParleyError) as refused:
            await calls.relay_ice(candidate, user, device, world.ports)
        assert refused.value.code == "not_found"
    with pytest.raises(ParleyError) as stranger:
        await calls.relay_ice(candidate, "u_carol", "pc", world.ports)
    assert stranger.value.code == "forbidden"


async def test_the_checker_does_not_time_out_a_call_answered_at_its_deadline(world) -> None:
    call_id = await ring(world)
    call = await world.ports.calls.get(call_id)
    await world.ports.calls.end(call_id)
    due = replace(call, call_id="call_due", ring_until=time.time() - 1)
    assert await world.ports.calls.begin(due) == "ok"
    await calls.accept(CallAccept(call_id="call_due", sdp="answer"), B, "phone", world.ports)
    # As if the accepting replica died before taking it off the ringing index.
    await world.ports.calls.redis.zadd(world.ports.calls.ringing_key, {"call_due": due.ring_until})
    await calls.check_calls(world.ports)
    assert (await world.ports.calls.get("call_due")).state == "active"
    assert await world.ports.calls.due(time.time()) == []


def test_what_the_stored_message_says() -> None:
    ringing = Call("c", "d", A, "laptop", B, "audio", "ringing", 0.0, 45.0)
    answered = replace(ringing, state="active", answered_at=10.0, callee_device="phone")
    assert outcome_of(answered, "hangup") == "completed"
    assert outcome_of(answered, "connection_lost") == "completed"
    assert [outcome_of(ringing, r) for r in ("declined", "busy", "cancelled")] == ["declined", "busy", "cancelled"]
    assert {outcome_of(ringing, r) for r in ("timeout", "offline", "connection_lost")} == {"missed"}
