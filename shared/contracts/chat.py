"""Friends, messages, history and sync (PROTOCOL.md, "Users and friends", "Messages")."""
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from shared.contracts.auth import DeviceId, UserProfile
from shared.contracts.base import Contract, SparseContract
from shared.contracts.calls import CallRecord

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Seq = Annotated[int, Field(ge=1, le=2**53)]


# --- friends -------------------------------------------------------------------------------
class FriendTarget(Contract):
    user_id: Id


class FriendsList(Contract):
    pass


class Friend(Contract):
    user_id: str
    username: str
    display_name: str
    online: bool
    last_seen: str | None


class FriendsListReply(Contract):
    friends: list[Friend]
    incoming: list[UserProfile]
    outgoing: list[UserProfile]


class FriendRequestPush(Contract):
    """Push `friend.request` to the asked user; `friend.accepted` to the requester."""

    user: UserProfile


class PresencePush(Contract):
    """Push `presence`: a friend's first device came online or last device went away."""

    user_id: str
    online: bool
    last_seen: str | None


# --- messages --------------------------------------------------------------------------------
class Target(Contract):
    """`{"user_id": ...}` for a friend, or `{"group_id": ...}` for a group."""

    user_id: Id | None = None
    group_id: Id | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Target":
        if (self.user_id is None) == (self.group_id is None):
            raise ValueError("give exactly one of user_id or group_id")
        return self


class MessageSend(Contract):
    to: Target
    client_msg_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)] | None = None
    file_id: Id | None = None
    ttl_seconds: Annotated[int, Field(ge=1, le=604800)] | None = None

    @model_validator(mode="after")
    def _has_content(self) -> "MessageSend":
        if self.text is None and self.file_id is None:
            raise ValueError("text: one of text or file_id is required")
        return self


class MessageSendReply(Contract):
    message_id: str
    conversation_id: str
    seq: int
    sent_at: str


class MessageAck(Contract):
    conversation_id: Id
    seq: Seq


class Attachment(Contract):
    """The file a message carries, as clients draw it."""

    file_id: str
    name: str
    size: int
    content_type: str


class Message(SparseContract):
    """A stored message as clients see it: the data of push `message.new` and of history."""

    message_id: str
    conversation_id: str
    seq: int
    from_user_id: str
    to: dict[str, str]
    text: str | None = None
    file: Attachment | None = None
    call: CallRecord | None = None  # a call's message, stored by chat when the call ends
    sent_at: str
    expires_at: str | None = None


class HistoryFetch(Contract):
    conversation_id: Id
    before_seq: Seq | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class HistoryReply(Contract):
    messages: list[Message]
    has_more: bool


class SyncDone(Contract):
    count: int


# --- internal: gateway → chat ---------------------------------------------------------------
class DeviceBound(Contract):
    """A socket was bound to (user, device): stream it everything above its cursors."""

    user_id: str
    device_id: DeviceId
    gateway_id: str
    conn_id: str


class DeliveriesLost(Contract):
    """Event: chat could not push to live sockets (Redis or a gateway's queue away); every
    gateway syncs its sockets again, so what was lost arrives without a reconnect."""

    reason: str


class PresenceChanged(Contract):
    """Event: a user's first device connected or last device went away."""

    user_id: str
    online: bool
    last_seen: str | None
