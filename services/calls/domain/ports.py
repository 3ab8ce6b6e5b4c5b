"""What the calls domain works on: a call in progress (`Call`), and the small interfaces it needs
from the outside world. The call store (storage/call_store.py, Redis), presence and pushes
(shared/), and chat over RPC (remote.py) implement them; domain code names only these."""
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel

from shared.contracts.calls import CallMessage, CallPeer, CallPeerAsk, EndReason, IceCandidate, Media
from shared.delivery import Deliverer, Presence

CallState = Literal["ringing", "active"]
Begun = Literal["ok", "busy", "caller_busy"]
Accepted = Literal["ok", "taken", "gone"]
Buffered = Literal["buffered", "active", "gone", "full"]


@dataclass(frozen=True, slots=True)
class Call:
    """A call in progress (ringing or answered), as the call store holds it; times in unix seconds."""

    call_id: str
    conversation_id: str
    caller: str
    caller_device: str
    callee: str
    media: Media
    state: CallState
    invited_at: float
    ring_until: float
    answered_at: float | None = None
    callee_device: str | None = None

    def has(self, user_id: str) -> bool:
        return user_id in (self.caller, self.callee)

    def other(self, user_id: str) -> str:
        return self.callee if user_id == self.caller else self.caller

    def device_of(self, user_id: str) -> str | None:
        """The device a participant is in the call on (the callee's: once one accepted)."""
        return self.caller_device if user_id == self.caller else self.callee_device


class CallStore(Protocol):
    """Calls in progress, shared by every calls replica; begin, accept and end happen once each."""

    async def begin(self, call: Call) -> Begun: ...

    async def get(self, call_id: str) -> Call | None: ...

    async def ended_between(self, call_id: str) -> tuple[str, str] | None:
        """The two users of a call that ended within the last minute."""
        ...

    async def accept(self, call_id: str, device_id: str, now: float) -> tuple[Accepted, list[IceCandidate]]: ...

    async def buffer_ice(self, call_id: str, candidate: IceCandidate) -> Buffered: ...

    async def end(self, call_id: str, only_if_ringing: bool = False) -> Call | None:
        """The call, to the one caller that ended it; None to everyone else (and, with
        `only_if_ringing`, when it was answered meanwhile)."""
        ...

    async def due(self, now: float, limit: int = 200) -> list[str]: ...

    async def live(self, limit: int = 10_000) -> list[Call]: ...

    async def defer_record(self, call: Call, reason: EndReason, ended_at: float) -> None: ...

    async def take_deferred(self) -> tuple[Call, EndReason, float] | None: ...


class Chat(Protocol):
    """What calls asks chat, which owns friendships, conversations and messages."""

    async def peer(self, ask: CallPeerAsk) -> CallPeer:
        """Whom the caller calls and their direct conversation; forbidden unless friends."""
        ...

    async def record(self, message: CallMessage) -> None:
        """Store the call's one message (idempotent by call id); raises when it could not."""
        ...


class DomainEvents(Protocol):
    """Events out on `<ns>.events` (`call.ringing`, `call.answered`, `call.ended`: offline push
    rings and stops ringing the callee's devices that are away)."""

    async def publish_event(self, name: str, event: BaseModel) -> None: ...


class RateLimit(Protocol):
    async def take(self, key: str) -> bool:
        """One token of `key`'s bucket; False when it is empty."""
        ...


@dataclass(frozen=True)
class CallPorts:
    calls: CallStore
    chat: Chat
    presence: Presence
    deliver: Deliverer
    invites: RateLimit
    events: DomainEvents
    ring_seconds: float
