"""calls (services/calls/domain/signalling.py) built as its runner builds it, over the real call
store (Redis) and chat (chat's world, asked in-process through its router as over RPC): the steps
that must happen once happen once, whoever races, and no call outlives its participants."""
import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel

from services.calls.domain.ports import Call
from services.calls.domain.signalling import outcome_of
from services.calls.remote import ChatOverRpc
from services.calls.service import CallsService
from shared import declared
from shared.contracts.base import utc_now
from shared.contracts.calls import CallAccept, CallIce, CallInvite, CallTarget, IceCandidate
from shared.contracts.errors import ParleyError
from shared.declared import Runtime
from shared.delivery import Deliverer
from shared.presence import DeviceSocket
from tests.unit.helpers import Events, InProcessRpc
from tests.unit.world import ChatWorld, caller, chat_world


A, B = "u_alice", "u_bob"
OFFER = "v=0 offer"


async def build_calls(world: ChatWorld, db, redis_settings) -> CallsService:
    """calls beside chat's world (its Redis, namespace, presence and outbox), chat over RPC being
    chat's router in this process, its events recorded (`calls.events`): only the parts that need
    the broker or RPC are given."""
    rt = Runtime(redis_settings.model_copy(update={"namespace": world.presence.ns}), db, world.presence.redis)
    return await CallsService.build(
        rt, presence=world.presence, deliver=Deliverer(world.presence, world.outbox),
        chat=ChatOverRpc(InProcessRpc(world.service)), events=Events(),
    )


@pytest.fixture
async def world(db, redis_settings):
    async with chat_world(db, redis_settings) as world:
        await world.befriend(A, B)
        await world.online(A, "laptop", conn_id="ca")
        await world.online(B, "phone", conn_id="cb")
        yield world


@pytest.fixture
async def calls(world, db, redis_settings) -> CallsService:
    return await build_calls(world, db, redis_settings)


async def ask(calls: CallsService, user: str, device: str, operation: str, request: BaseModel) -> Any:
    """`operation` asked of calls by `user` on `device`, as the gateway forwards a client's command."""
    return await declared.ask(calls, operation, request.model_dump(mode="json", exclude_none=True), caller(user, device))


async def check(calls: CallsService) -> None:
    """One run of calls' periodic checker, as the runner runs it."""
    (job,) = [j for j in calls.router().periodics if j.name == "calls.check"]
    await job.run()


async def ring(calls: CallsService) -> str:
    reply = await ask(calls, A, "laptop", "call.invite", CallInvite(user_id=B, media="video", sdp=OFFER))
    assert reply.state == "ringing"
    return reply.call_id


async def accept(calls: CallsService, call_id: str, device: str = "phone", sdp: str = "answer") -> None:
    await ask(calls, B, device, "call.accept", CallAccept(call_id=call_id, sdp=sdp))


async def stored_calls(world) -> list:
    (conversation,) = await world.conversations.of_user(A)
    page, _ = await world.messages.page(conversation.conversation_id, None, 50, utc_now(), conversation.last_seq)
    return [m.call for m in page if m.call is not None]


async def test_many_replicas_ending_one_call_end_it_once(world, calls) -> None:
    call_id = await ring(calls)
    await accept(calls, call_id)
    world.outbox.clear()
    hang_up = CallTarget(call_id=call_id)
    await asyncio.gather(*(ask(calls, A, "laptop", "call.hangup", hang_up) for _ in range(8)))
    for user, device in ((A, "laptop"), (B, "phone")):
        assert world.push_types(user, device).count("call.ended") == 1
    (record,) = await stored_calls(world)
    assert record.outcome == "completed" and record.call_id == call_id
    assert await calls.calls.get(call_id) is None


async def test_two_devices_accepting_at_once_one_wins(world, calls) -> None:
    await world.online(B, "tablet", conn_id="cb2")
    call_id = await ring(calls)
    results = await asyncio.gather(
        accept(calls, call_id, "phone", sdp="from phone"),
        accept(calls, call_id, "tablet", sdp="from tablet"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and refused[0].code == "conflict"
    accepted = world.pushes(A, "laptop", "call.accepted")
    assert len(accepted) == 1


async def test_a_call_message_the_database_could_not_take_is_stored_later_once(world, calls, monkeypatch) -> None:
    call_id = await ring(calls)
    real_append = world.messages.append_many
    failures = 0

    async def database_away(entries):
        nonlocal failures
        failures += 1
        raise ConnectionError("database away")

    monkeypatch.setattr(world.messages, "append_many", database_away)
    await ask(calls, A, "laptop", "call.cancel", CallTarget(call_id=call_id))
    assert failures == 1 and await stored_calls(world) == []
    monkeypatch.setattr(world.messages, "append_many", real_append)
    await check(calls)
    await check(calls)
    (record,) = await stored_calls(world)
    assert record.outcome == "cancelled"


async def test_the_checker_ends_unanswered_calls_and_calls_whose_socket_is_gone(world, calls) -> None:
    ringing = await ring(calls)
    call = await calls.calls.get(ringing)
    await calls.calls.end(ringing)  # start over with a deadline already passed
    late = replace(call, call_id="call_late", ring_until=time.time() - 1)
    assert await calls.calls.begin(late) == "ok"
    await check(calls)
    assert await calls.calls.get("call_late") is None
    ended = world.pushes(A, "laptop", "call.ended")
    assert ended[-1]["reason"] == "timeout"

    live = await ring(calls)
    await accept(calls, live)
    await check(calls)
    assert await calls.calls.get(live) is not None  # both sockets there: it goes on
    await world.presence.unbind(DeviceSocket(B, "phone", "gw1", "cb"))
    await check(calls)
    assert await calls.calls.get(live) is None
    ended = world.pushes(A, "laptop", "call.ended")
    assert ended[-1]["reason"] == "connection_lost" and ended[-1]["by_user_id"] == B


async def test_a_candidate_for_a_call_both_sides_saw_end_is_not_found(calls) -> None:
    call_id = await ring(calls)
    await accept(calls, call_id)
    await ask(calls, B, "phone", "call.hangup", CallTarget(call_id=call_id))
    # crossing B's: no error, the call is over for both
    await ask(calls, A, "laptop", "call.hangup", CallTarget(call_id=call_id))
    candidate = CallIce(call_id=call_id, candidate=IceCandidate(candidate="candidate:1 1 udp 1 10.0.0.1 9 typ host"))
    for user, device in ((A, "laptop"), (B, "phone")):
        with pytest.raises(ParleyError) as refused:
            await ask(calls, user, device, "call.ice", candidate)
        assert refused.value.code == "not_found"
    with pytest.raises(ParleyError) as stranger:
        await ask(calls, "u_carol", "pc", "call.ice", candidate)
    assert stranger.value.code == "forbidden"


async def test_the_checker_does_not_time_out_a_call_answered_at_its_deadline(calls) -> None:
    call_id = await ring(calls)
    call = await calls.calls.get(call_id)
    await calls.calls.end(call_id)
    due = replace(call, call_id="call_due", ring_until=time.time() - 1)
    assert await calls.calls.begin(due) == "ok"
    await accept(calls, "call_due")
    # As if the accepting replica died before taking it off the ringing index.
    await calls.calls.redis.zadd(calls.calls.ringing_key("call_due"), {"call_due": due.ring_until})
    await check(calls)
    assert (await calls.calls.get("call_due")).state == "active"
    assert await calls.calls.due(time.time()) == []


def test_what_the_stored_message_says() -> None:
    ringing = Call("c", "d", A, "laptop", B, "audio", "ringing", 0.0, 45.0)
    answered = replace(ringing, state="active", answered_at=10.0, callee_device="phone")
    assert outcome_of(answered, "hangup") == "completed"
    assert outcome_of(answered, "connection_lost") == "completed"
    assert [outcome_of(ringing, r) for r in ("declined", "busy", "cancelled")] == ["declined", "busy", "cancelled"]
    assert {outcome_of(ringing, r) for r in ("timeout", "offline", "connection_lost")} == {"missed"}


async def test_the_moments_of_a_call_are_told_for_offline_push(world, calls) -> None:
    """call.ringing says which of the callee's devices rang live; call.answered on which device it
    was taken; call.ended why; an offline callee's call never rang (only ended)."""
    await world.online(B, "tablet", conn_id="cb2")
    call_id = await ring(calls)
    await accept(calls, call_id, "tablet")
    await ask(calls, A, "laptop", "call.hangup", CallTarget(call_id=call_id))
    (ringing,) = calls.events.named("call.ringing")
    assert (ringing.call_id, ringing.caller_id, ringing.callee_id, ringing.media) == (call_id, A, B, "video")
    assert {(d.user_id, d.device_id) for d in ringing.reached} == {(B, "phone"), (B, "tablet")}
    (answered,) = calls.events.named("call.answered")
    assert (answered.call_id, answered.callee_id, answered.device_id) == (call_id, B, "tablet")
    (ended,) = calls.events.named("call.ended")
    assert (ended.call_id, ended.reason, ended.caller_id, ended.callee_id) == (call_id, "hangup", A, B)
    assert ended.conversation_id == ringing.conversation_id == answered.conversation_id

    for sock in await world.presence.sockets_of([B]):
        await world.presence.unbind(sock)
    reply = await ask(calls, A, "laptop", "call.invite", CallInvite(user_id=B, media="audio", sdp=OFFER))
    assert reply.state == "ended" and reply.reason == "offline"
    assert len(calls.events.named("call.ringing")) == 1
    assert calls.events.named("call.ended")[-1].reason == "offline"
