"""One-to-one calls: signalling routed between the two participants' devices, and one stored
message per call (docs/protocol.md "Calls").

The state of a call in progress is the call store's (Redis, shared by every replica), and every
step that must happen once is one atomic step there: `begin` (nobody busy), `accept` (the first
device wins), `end` (the one ender records the call's message and tells both sides). Nothing of
the signalling is stored; a call ends when it is declined, cancelled, hung up, not answered in
time, or when a participant's socket is gone (`check_calls`, run by every replica).
"""
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.delivery import Deliverer, push
from services.chat.domain.ports import Calls, Conversations, Friendships, Messages, Presence, RateLimit
from services.chat.domain.records import Call, Conversation, Draft
from services.chat.domain.sending import announce, direct_conversation_id
from shared.contracts.base import iso_from_timestamp, utc_now
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
    CallRecord,
    EndReason,
    Outcome,
)
from shared.contracts.errors import ParleyError
from shared.ids import new_id
from shared.logs import log_event

log = logging.getLogger("parley.chat.calls")


@dataclass(frozen=True)
class CallPorts:
    calls: Calls
    conversations: Conversations
    friendships: Friendships
    messages: Messages
    presence: Presence
    deliver: Deliverer
    invites: RateLimit
    ring_seconds: float


# --- the caller ---------------------------------------------------------------------------------
async def invite(request: CallInvite, user_id: str, device_id: str, ports: CallPorts) -> CallInviteReply:
    """Ring every online device of the other member of a direct conversation."""
    _bounded_sdp(request.sdp)
    callee, conversation = await _direct_with(request, user_id, ports)
    if not await ports.invites.take(user_id):
        raise ParleyError.rate_limited("too many call invites; wait a minute before calling again")
    now = time.time()
    call = Call(
        call_id=new_id("call"), conversation_id=conversation.conversation_id, caller=user_id, caller_device=device_id,
        callee=callee, media=request.media, state="ringing", invited_at=now, ring_until=now + ports.ring_seconds,
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
    if not await ports.deliver.to_users([callee], [push("call.incoming", ring)]):
        await end_call(call.call_id, "offline", None, ports)
        return CallInviteReply(call_id=call.call_id, state="ended", reason="offline")
    log_event(log, "call.ringing", call_id=call.call_id, callee=callee, media=call.media)
    return CallInviteReply(call_id=call.call_id, state="ringing", ring_until=ring.ring_until)


async def cancel(call_id: str, user_id: str, ports: CallPorts) -> None:
    call = await _participant_call(call_id, user_id, ports)
    if call is None:
        return
    if user_id != call.caller:
        raise ParleyError.forbidden("only the caller cancels a call; decline it instead")
    await end_call(call_id, "cancelled" if call.state == "ringing" else "hangup", user_id, ports)


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


async def decline(call_id: str, user_id: str, ports: CallPorts) -> None:
    call = await _participant_call(call_id, user_id, ports)
    if call is None:
        return
    if user_id != call.callee:
        raise ParleyError.forbidden("only the person called declines a call; cancel it instead")
    await end_call(call_id, "declined" if call.state == "ringing" else "hangup", user_id, ports)


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
    """A candidate to the other side's device; the caller's are kept while the call rings."""
    if len(request.candidate.candidate) > MAX_CANDIDATE_CHARS:
        raise ParleyError.too_large(f"an ICE candidate may have at most {MAX_CANDIDATE_CHARS} characters")
    call = await _participant_call(request.call_id, user_id, ports)
    if call is None:
        return  # a late candidate of a call just ended: nothing to do
    if call.state == "ringing" and user_id == call.caller:
        buffered = await ports.calls.buffer_ice(call.call_id, request.candidate)
        if buffered == "full":
            raise ParleyError.too_large("too many ICE candidates before the call was answered")
        if buffered != "active":
            return
        call = await ports.calls.get(call.call_id)  # accepted meanwhile: relay it now
        if call is None:
            return
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


async def end_call(call_id: str, reason: EndReason, by_user_id: str | None, ports: CallPorts) -> None:
    """End it once, whoever asks first: tell both users' devices, store the call's message."""
    call = await ports.calls.end(call_id)
    if call is None:
        return  # someone else ended it
    ended_at = time.time()
    duration = _duration(call, ended_at)
    ended = CallEndedPush(call_id=call_id, reason=reason, by_user_id=by_user_id, duration_seconds=duration)
    await ports.deliver.to_users([call.caller, call.callee], [push("call.ended", ended)])
    log_event(log, "call.ended", call_id=call_id, reason=reason, duration_seconds=duration)
    try:
        await _record(call, reason, ended_at, ports)
    except Exception as exc:  # the database away: the checker stores it later (record_deferred)
        log_event(log, "call.record_deferred", logging.WARNING, call_id=call_id, error=repr(exc))
        await ports.calls.defer_record(call, reason, ended_at)


# --- every replica, every call_check_seconds ------------------------------------------------------
async def check_calls(ports: CallPorts) -> None:
    """End calls nobody answered in time and calls whose participant's socket is gone (a gateway
    died: its sockets leave presence within its expiry); store call messages deferred."""
    for call_id in await ports.calls.due(time.time()):
        await end_call(call_id, "timeout", None, ports)
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
async def _direct_with(request: CallInvite, user_id: str, ports: CallPorts) -> tuple[str, Conversation]:
    """Whom the invite calls, and their direct conversation (made on a first call by user_id)."""
    if request.user_id is not None:
        callee = request.user_id
        conversation = None
    else:
        assert request.conversation_id is not None
        conversation = await ports.conversations.conversation(request.conversation_id)
        if conversation is None or conversation.kind != "direct" or not conversation.has_member(user_id):
            raise ParleyError.forbidden("calls are between the two people of a direct conversation you are in")
        others = conversation.others(user_id)
        callee = others[0] if len(others) == 1 else user_id
    if callee == user_id or not await ports.friendships.accepted_among([(user_id, callee)]):
        raise ParleyError.forbidden("calls need an accepted friendship")
    if conversation is None:
        conversation = await ports.conversations.ensure_direct(
            direct_conversation_id(user_id, callee), sorted((user_id, callee)), utc_now()
        )
    return callee, conversation


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
    """The call's one message, from the caller (idempotent: its client_msg_id is the call's)."""
    conversation = await ports.conversations.conversation(call.conversation_id)
    if conversation is None:
        return
    record = CallRecord(
        call_id=call.call_id, media=call.media, outcome=outcome_of(call, reason),
        duration_seconds=_duration(call, ended_at),
    )
    draft = Draft(
        message_id=new_id("m"), from_user_id=call.caller, client_msg_id=f"call:{call.call_id}",
        to={"user_id": call.callee}, sent_at=datetime.fromtimestamp(ended_at, timezone.utc), call=record,
    )
    (appended,) = await ports.messages.append_many([(conversation, draft)])
    if appended.first:
        await ports.deliver.fan_out(announce(conversation, appended.message, None))
