"""One-to-one voice and video calls (docs/protocol.md, "Calls").

Media flows browser to browser (WebRTC); Parley carries the signalling, routes it to the two
participants' sockets like `typing` (never stored), and stores one message per call in the
direct conversation (`Message.call`). SDP and ICE candidates are opaque to Parley: it bounds
their size (`too_large` past MAX_SDP_CHARS / MAX_CANDIDATE_CHARS) and passes them on.
"""
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.contracts.base import Contract, SparseContract

Media = Literal["audio", "video"]
# Why a call ended, as `call.ended` says it:
# declined      the callee declined            busy     the callee is in another call
# cancelled     the caller hung up while ringing   timeout  nobody answered within the ring time
# offline       the callee has no device online    hangup   a participant hung up
# answered_elsewhere  (to the callee's other devices) another device of theirs accepted
# connection_lost     a participant's socket went away (its gateway died, the network dropped)
EndReason = Literal[
    "declined", "busy", "cancelled", "timeout", "offline", "hangup", "answered_elsewhere", "connection_lost"
]
# What a call's stored message says: answered (with its duration), or not, and why.
Outcome = Literal["completed", "missed", "declined", "busy", "cancelled"]

# Larger SDP or candidates are answered too_large (real ones are a few KiB and ~200 bytes).
MAX_SDP_CHARS = 16 * 1024
MAX_CANDIDATE_CHARS = 1024
CallId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
Sdp = Annotated[str, StringConstraints(min_length=1)]


class CallRecord(SparseContract):
    """A call as its stored message carries it (`Message.call`)."""

    call_id: str
    media: Media
    outcome: Outcome
    duration_seconds: int | None = None  # answered calls: from accept to end


class IceCandidate(SparseContract):
    """An RTCIceCandidateInit, in the protocol's field names."""

    candidate: str  # "" is the end-of-candidates marker
    sdp_mid: str | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=1024)] | None = None
    username_fragment: str | None = None


# --- requests and replies ---------------------------------------------------------------------
class WhomToCall(Contract):
    """Whom a call is for: exactly one of a direct conversation or a friend's user_id."""

    conversation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.conversation_id is None) == (self.user_id is None):
            raise ValueError("give exactly one of conversation_id or user_id")
        return self


class CallInvite(WhomToCall):
    """Call the other person of a direct conversation: named by the conversation, or by the
    friend's user_id (before any message, when the client has no conversation id yet)."""

    media: Media
    sdp: Sdp  # the caller's offer


class CallInviteReply(SparseContract):
    """`ringing` until `ring_until`; or `ended` at once (`reason`: busy or offline), its stored
    message already sent."""

    call_id: str
    state: Literal["ringing", "ended"]
    ring_until: str | None = None
    reason: EndReason | None = None


class CallAccept(Contract):
    call_id: CallId
    sdp: Sdp  # the callee's answer


class CallTarget(Contract):
    """call.decline, call.cancel, call.hangup."""

    call_id: CallId


class CallIce(Contract):
    call_id: CallId
    candidate: IceCandidate


# --- what calls asks chat (internal: chat owns friendships, conversations and messages) -------------
class CallPeerAsk(WhomToCall):
    """`chat.calls.peer`, at invite: whom `caller_id` calls and in which direct conversation (made
    on a first call by user_id); `forbidden` unless the two are friends in a direct conversation."""

    caller_id: str


class CallPeer(Contract):
    callee_id: str
    conversation_id: str


class CallMessage(Contract):
    """`chat.calls.record`, once a call has ended: its one message in the direct conversation, from
    the caller. Idempotent: stored under the caller's client_msg_id `call:<call_id>`, so a retry
    (a timed-out answer, a deferred record taken twice) stores nothing new."""

    conversation_id: str
    caller_id: str
    callee_id: str
    ended_at: str  # ISO 8601 UTC: the message's sent_at
    call: CallRecord


class CallMessageStored(Contract):
    message_id: str
    seq: int
    first: bool  # False: a retry of a message already stored


class IceServer(SparseContract):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServersReply(SparseContract):
    """What to give RTCPeerConnection's `iceServers`; TURN credentials expire at `expires_at`."""

    ice_servers: list[IceServer]
    expires_at: str | None = None


# --- pushes -------------------------------------------------------------------------------------
class CallIncomingPush(Contract):
    """To every online device of the callee: ring."""

    call_id: str
    conversation_id: str
    from_user_id: str
    media: Media
    sdp: str
    ring_until: str


class CallAcceptedPush(Contract):
    """To the caller's device: the callee's answer (and which device of theirs took it)."""

    call_id: str
    sdp: str
    device_id: str


class CallIcePush(Contract):
    call_id: str
    from_user_id: str
    candidate: IceCandidate


class CallEndedPush(SparseContract):
    call_id: str
    reason: EndReason
    by_user_id: str | None = None
    duration_seconds: int | None = None
