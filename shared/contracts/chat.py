"""Friends, messages, history and sync (PROTOCOL.md, "Users and friends", "Messages")."""
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from shared.contracts.auth import DeviceId, UserProfile
from shared.contracts.base import Contract, SparseContract
from shared.contracts.calls import CallRecord
from shared.contracts.e2e import Encrypted
from shared.contracts.interactions import (
    BURN_MAX_SECONDS,
    BURN_MIN_SECONDS,
    MAX_MENTIONS,
    Burn,
    Position,
    Quote,
    Reaction,
)

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
    avatar_url: str | None = None
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


class ProfileUpdatedPush(Contract):
    """Push `profile.updated`: a friend's (or your own) profile changed."""

    user: UserProfile


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


VOICE_MAX_MS = 900_000  # a voice message is at most 15 minutes


class Voice(Contract):
    """A voice message's recording (its audio is the message's `file`)."""

    duration_ms: Annotated[int, Field(ge=1, le=VOICE_MAX_MS)]


class Sticker(Contract):
    """A sticker message's sticker: a built-in (`builtin:<name>`) or a made one (an image id)."""

    sticker_id: str
    url: str


class MessageSend(Contract):
    to: Target
    client_msg_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)] | None = None
    file_id: Id | None = None
    ttl_seconds: Annotated[int, Field(ge=1, le=604800)] | None = None
    # A message of the same conversation this one answers (its quote is stored with it).
    reply_to: Id | None = None
    # Group members this message mentions (groups only).
    mentions: Annotated[list[Id], Field(max_length=MAX_MENTIONS)] | None = None
    # Burn after reading (direct messages only): destroyed this long after the recipient opens it.
    burn_seconds: Annotated[int, Field(ge=BURN_MIN_SECONDS, le=BURN_MAX_SECONDS)] | None = None
    # A sticker message (instead of text and file): `builtin:<name>` or a made sticker's id.
    sticker_id: Id | None = None
    # A voice message: `file_id` is its audio.
    voice: Voice | None = None
    # An end-to-end encrypted conversation's message (docs/security.md): its text, sticker, voice
    # and mentions are inside the ciphertexts; `file_id` names an encrypted upload.
    encrypted: Encrypted | None = None

    @field_validator("encrypted")
    @classmethod
    def _nothing_in_clear(cls, encrypted: Encrypted | None, info: ValidationInfo) -> Encrypted | None:
        if encrypted is not None:
            clear = [name for name in ("text", "sticker_id", "voice", "mentions") if info.data.get(name) is not None]
            if clear:
                raise ValueError(f"{', '.join(clear)} go inside the ciphertext of an encrypted message")
        return encrypted

    @model_validator(mode="after")
    def _has_content(self) -> "MessageSend":
        if self.sticker_id is not None and (self.text is not None or self.file_id is not None):
            raise ValueError("sticker_id: a sticker message carries no text or file")
        if self.text is None and self.file_id is None and self.sticker_id is None and self.encrypted is None:
            raise ValueError("text: one of text, file_id, sticker_id or encrypted is required")
        if self.voice is not None and self.file_id is None:
            raise ValueError("voice: a voice message carries its audio as file_id")
        if self.burn_seconds is not None and self.ttl_seconds is not None:
            raise ValueError("burn_seconds: a message burns after reading or disappears on a timer, not both")
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
    # End-to-end encrypted: every device's ciphertext, as sent (each device decrypts its own).
    encrypted: Encrypted | None = None
    call: CallRecord | None = None  # a call's message, stored by chat when the call ends
    sent_at: str
    expires_at: str | None = None
    edited_at: str | None = None
    reply_to: Quote | None = None
    reactions: list[Reaction] | None = None
    mentions: list[str] | None = None
    # Burn after reading; for the recipient `text` and `file` are absent until opened (message.open).
    burn: Burn | None = None
    sticker: Sticker | None = None  # a sticker message (no text, no file)
    voice: Voice | None = None  # a voice message: `file` is its audio


class HistoryFetch(Contract):
    conversation_id: Id
    before_seq: Seq | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class HistoryReply(Contract):
    messages: list[Message]
    has_more: bool
    # The other members' read and delivery positions (receipts that survive a reload).
    read_by: list[Position] = []
    delivered_to: list[Position] = []


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
