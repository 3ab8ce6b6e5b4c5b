"""One-to-one calls: signalling routed between the two participants' devices, and one stored
message per call (docs/protocol.md "Calls").

The state of a call in progress is the call store's (Redis, shared by every replica), and every
step that must happen once is atomic there: `begin` (nobody busy: each user claimed atomically,
one after the other), `accept` (the first device wins), `end` (the one ender has the call's
message stored and tells both sides). Nothing
of the signalling is stored. A call ends when it is declined, cancelled, hung up, not answered in
time, or when a participant's socket is gone (`check_calls`, run by one replica at a time).

What chat owns (friendships, conversations, messages) calls asks chat for (`ports.chat`).
"""
import logging
import time
from typing import Literal

from pydantic import BaseModel

from services.calls.domain.ports import Call, CallPorts
from shared.contracts.base import iso_from_timestamp
from shared.contracts.calls import (
    MAX_CANDIDATE_CHARS,
    MAX_SDP_CHARS,
    CallAccept,
    CallAcceptedPush,
    CallEndedPush,
    CallIce,
    CallIcePush,
    CallIncomingPush,
    CallInvite,
    CallInviteReply,
    CallMessage,
    CallPeerAsk,
    CallRecord,
    EndReason,
    Outcome,
)
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.events import CallAnswered, CallEnded, CallRinging
from shared.delivery import Fanout, push
from shared.ids import new_id
from shared.logs import log_event

log = logging.getLogger("parley.calls")


# --- the caller ---------------------------------------------------------------------------------
async def invite(request: CallInvite, user_id: str, device_id: str, ports: CallPorts) -> CallInviteReply:
    """Ring every online device of the other member of a direct conversation."""
    _bounded_sdp(request.sdp)
    peer = await ports.chat.peer(
        CallPeerAsk(caller_id=user_id, conversation_id=request.conversation_id, user_id=request.user_id)
    )
    if not await ports.invites.take(user_id):
        raise ParleyError.rate_limited("too many call invites; wait a minute before calling again")
    now = time.time()
    call = Call(
        call_id=new_id("call"), conversation_id=peer.conversation_id, caller=user_id, caller_device=device_id,
        callee=peer.callee_id, media=request.media, state="ringing", invited_at=now, ring_until=now + ports.ring_seconds,
    )
    begun = await ports.calls.begin(call)
    if begun == "caller_busy":
        raise ParleyError.conflict("you are already in a call; hang it up first")
    if begun == "busy":
        await _record(call, "busy", now, ports)
        return CallInviteReply(call_id=call.call_id, state="ended", reason="busy")
    ring = CallIncomingPush(
        call_id=call.call_id, conversation_id=call.conversation_id, from_user_id=user_id, media=call.media,
        sdp=request.sdp, ring_until=iso_from_timestamp(call.ring_until),
    )
    (reached,) = await ports.deliver.fan_out([Fanout([call.callee], [push("call.incoming", ring)])])
    if not reached:
        await end_call(call.call_id, "offline", None, ports)
        return CallInviteReply(call_id=call.call_id, state="ended", reason="offline")
    log_event(log, "call.ringing", call_id=call.call_id, callee=call.callee, media=call.media)
    await _tell(ports, "call.ringing", CallRinging(
        call_id=call.call_id, conversation_id=call.conversation_id, caller_id=call.caller, callee_id=call.callee,
        media=call.media, ring_until=ring.ring_until, reached=reached,
    ))
    return CallInviteReply(call_id=call.call_id, state="ringing", ring_until=ring.ring_until)


async def cancel(call_id: str, user_id: str, ports: CallPorts) -> None:
    await _end_from_one_side(call_id, user_id, "cancelled", ports)


# --- the callee ---------------------------------------------------------------------------------
async def accept(request: CallAccept, user_id: str, device_id: str, ports: CallPorts) -> None:
    """Answer on this device: the caller gets the answer, the callee's other devices stop ringing,
    and this device gets the candidates the caller sent while it rang."""
    _bounded_sdp(request.sdp)
    call = await _participant_call(request.call_id, user_id, ports)
    if call is None:
        raise ParleyError.conflict("the call has already ended")
    if user_id != call.callee:
        raise ParleyError.forbidden("only the person called answers a call")
    accepted, buffered = await ports.calls.accept(call.call_id, device_id, time.time())
    if accepted == "taken":
        raise ParleyError.conflict("the call was answered on another device")
    if accepted == "gone":
        raise ParleyError.conflict("the call has already ended")
    answer = CallAcceptedPush(call_id=call.call_id, sdp=request.sdp, device_id=device_id)
    elsewhere = CallEndedPush(call_id=call.call_id, reason="answered_elsewhere", by_user_id=user_id)
    await ports.deliver.to_device(call.caller, call.caller_device, [push("call.accepted", answer)])
    await ports.deliver.to_users([user_id], [push("call.ended", elsewhere)], except_device=(user_id, device_id))
    if buffered:
        pushes = [push("call.ice", CallIcePush(call_id=call.call_id, from_user_id=call.caller, candidate=c)) for c in buffered]
        await ports.deliver.to_device(user_id, device_id, pushes)
    log_event(log, "call.accepted", call_id=call.call_id, device_id=device_id)
    await _tell(ports, "call.answered", CallAnswered(
        call_id=call.call_id, conversation_id=call.conversation_id, callee_id=user_id, device_id=device_id,
    ))


async def decline(call_id: str, user_id: str, ports: CallPorts) -> None:
    await _end_from_one_side(call_id, user_id, "declined", ports)


# --- either side --------------------------------------------------------------------------------
async def hang_up(call_id: str, user_id: str, ports: CallPorts) -> None:
    call = await _participant_call(call_id, user_id, ports)
    if call is None:
        return
    reason: EndReason = "hangup"
    if call.state == "ringing":
        reason = "cancelled" if user_id == call.caller else "declined"
    await end_call(call_id, reason, user_id, ports)


async def relay_ice(request: CallIce, user_id: str, device_id: str, ports: CallPorts) -> None:
    """A candidate to the other side's device; the caller's are kept while the call rings. A
    finished call is not_found: only ending it again is forgiven (a crossing hang-up), a
    candidate has nowhere to go."""
    if len(request.candidate.candidate) > MAX_CANDIDATE_CHARS:
        raise ParleyError.too_large(f"an ICE candidate may have at most {MAX_CANDIDATE_CHARS} characters")
    call = await _participant_call(request.call_id, user_id, ports)
    if call is None:
        raise _ended()
    if call.state == "ringing" and user_id == call.caller:
        buffered = await ports.calls.buffer_ice(call.call_id, request.candidate)
        if buffered == "full":
            raise ParleyError.too_large("too many ICE candidates before the call was answered")
        if buffered == "gone":
            raise _ended()
        if buffered == "buffered":
            return
        call = await ports.calls.get(call.call_id)  # accepted meanwhile: relay it now
        if call is None:
            raise _ended()
    mine = call.device_of(user_id)
    if mine is None:
        raise ParleyError.conflict("answer the call before sending candidates")
    if mine != device_id:
        raise ParleyError.forbidden("this call is on another of your devices")
    other = call.other(user_id)
    other_device = call.device_of(other)
    assert other_device is not None  # an answered call has both devices
    candidate = CallIcePush(call_id=call.call_id, from_user_id=user_id, candidate=request.candidate)
    await ports.deliver.to_device(other, other_device, [push("call.ice", candidate)])


async def end_call(
    call_id: str, reason: EndReason, by_user_id: str | None, ports: CallPorts, only_if_ringing: bool = False
) -> None:
    """End it once, whoever asks first: tell both users' devices, have chat store the call's
    message (deferred to the checker when chat cannot take it now)."""
    call = await ports.calls.end(call_id, only_if_ringing)
    if call is None:
        return  # someone else ended it (or, only_if_ringing, it was answered)
    ended_at = time.time()
    duration = _duration(call, ended_at)
    ended = CallEndedPush(call_id=call_id, reason=reason, by_user_id=by_user_id, duration_seconds=duration)
    await ports.deliver.to_users([call.caller, call.callee], [push("call.ended", ended)])
    log_event(log, "call.ended", call_id=call_id, reason=reason, duration_seconds=duration)
    await _tell(ports, "call.ended", CallEnded(
        call_id=call_id, conversation_id=call.conversation_id, caller_id=call.caller, callee_id=call.callee,
        reason=reason,
    ))
    try:
        await _record(call, reason, ended_at, ports)
    except ParleyError as exc:
        if exc.code != ErrorCode.UNAVAILABLE:  # refused (the conversation is gone): nothing to retry
            log_event(log, "call.record_refused", logging.WARNING, call_id=call_id, error=exc.message)
            return
        await _defer(call, reason, ended_at, exc, ports)
    except Exception as exc:
        await _defer(call, reason, ended_at, exc, ports)


# --- one replica, every call_check_seconds --------------------------------------------------------
async def check_calls(ports: CallPorts) -> None:
    """End calls nobody answered in time and calls whose participant's socket is gone (a gateway
    died: its sockets leave presence within its expiry); store call messages deferred."""
    for call_id in await ports.calls.due(time.time()):
        await end_call(call_id, "timeout", None, ports, only_if_ringing=True)
    live = await ports.calls.live()
    if live:
        users = list({u for c in live for u in (c.caller, c.callee)})
        present = {(s.user_id, s.device_id) for s in await ports.presence.sockets_of(users)}
        for call in live:
            for user_id in (call.caller, call.callee):
                device = call.device_of(user_id)
                if device is not None and (user_id, device) not in present:
                    await end_call(call.call_id, "connection_lost", user_id, ports)
                    break
    await record_deferred(ports)


async def record_deferred(ports: CallPorts) -> None:
    while (deferred := await ports.calls.take_deferred()) is not None:
        call, reason, ended_at = deferred
        try:
            await _record(call, reason, ended_at, ports)
        except Exception:
            await ports.calls.defer_record(call, reason, ended_at)
            raise


# --- helpers ------------------------------------------------------------------------------------
async def _end_from_one_side(call_id: str, user_id: str, reason: Literal["cancelled", "declined"], ports: CallPorts) -> None:
    """call.cancel (the caller's) or call.decline (the callee's): that reason while it rings, a
    hang-up once answered; the other side's is forbidden."""
    call = await _participant_call(call_id, user_id, ports)
    if call is None:
        return
    if reason == "cancelled" and user_id != call.caller:
        raise ParleyError.forbidden("only the caller cancels a call; decline it instead")
    if reason == "declined" and user_id != call.callee:
        raise ParleyError.forbidden("only the person called declines a call; cancel it instead")
    await end_call(call_id, reason if call.state == "ringing" else "hangup", user_id, ports)


async def _participant_call(call_id: str, user_id: str, ports: CallPorts) -> Call | None:
    """The call if `user_id` is in it; None if it ended in the last minute with them in it (a
    hang-up crossing the other side's is no error); else not_found / forbidden."""
    call = await ports.calls.get(call_id)
    if call is not None:
        if not call.has(user_id):
            raise ParleyError.forbidden("you are not in this call")
        return call
    ended = await ports.calls.ended_between(call_id)
    if ended is None:
        raise ParleyError.not_found("no such call")
    if user_id not in ended:
        raise ParleyError.forbidden("you are not in this call")
    return None


async def _tell(ports: CallPorts, name: str, event: BaseModel) -> None:
    """A call's moment for the event's consumers (offline push). Best effort, like the signalling
    itself: the call goes on without it (a device away does not ring, or rings until its TTL)."""
    try:
        await ports.events.publish_event(name, event)
    except Exception as exc:
        log_event(log, "call.event_failed", logging.WARNING, event_name=name, error=repr(exc))


def _ended() -> ParleyError:
    return ParleyError.not_found("the call has ended")


def _bounded_sdp(sdp: str) -> None:
    if len(sdp) > MAX_SDP_CHARS:
        raise ParleyError.too_large(f"an SDP may have at most {MAX_SDP_CHARS} characters")


def _duration(call: Call, ended_at: float) -> int | None:
    return max(0, round(ended_at - call.answered_at)) if call.answered_at is not None else None


def outcome_of(call: Call, reason: EndReason) -> Outcome:
    """What the stored message says: answered (with its length), or why not."""
    if call.answered_at is not None:
        return "completed"
    if reason in ("declined", "busy", "cancelled"):
        return reason
    return "missed"  # timeout, offline, a socket gone while it rang


async def _record(call: Call, reason: EndReason, ended_at: float, ports: CallPorts) -> None:
    """The call's one message, stored by chat from the caller (idempotent by call id)."""
    record = CallRecord(
        call_id=call.call_id, media=call.media, outcome=outcome_of(call, reason),
        duration_seconds=_duration(call, ended_at),
    )
    await ports.chat.record(CallMessage(
        conversation_id=call.conversation_id, caller_id=call.caller, callee_id=call.callee,
        ended_at=iso_from_timestamp(ended_at), call=record,
    ))


async def _defer(call: Call, reason: EndReason, ended_at: float, exc: Exception, ports: CallPorts) -> None:
    log_event(log, "call.record_deferred", logging.WARNING, call_id=call.call_id, error=repr(exc))
    await ports.calls.defer_record(call, reason, ended_at)
