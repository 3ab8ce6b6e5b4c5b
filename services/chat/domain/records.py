"""chat's domain model: what the stores hand to the domain code, and take from it.

Only storage turns documents into these records and back (services/chat/storage/documents.py);
domain code reads fields and asks methods. What a member may see of a conversation, and whether
a message is still visible (not recalled, not expired), is decided here and nowhere else.

Records are dataclasses with slots, frozen for the type checker (`record`): a frozen
dataclass's `__init__` costs five times a plain one's (2.2 against 0.4 µs for a Message), and a
Message is built for every message sent and synced.
"""
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Literal, TypeVar, dataclass_transform

from shared.contracts import chat, e2e, events
from shared.contracts.base import iso
from shared.contracts.calls import CallRecord
from shared.contracts.envelope import Push
from shared.contracts.interactions import QUOTE_CHARS, Burn, Quote, Reaction
from shared.contracts.groups import Role

Kind = Literal["direct", "group"]
FriendshipStatus = Literal["pending", "accepted"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    """A dataclass with slots that mypy holds frozen (an assignment to a field is a type
    error) without the runtime cost of frozen's `__init__`."""
    return dataclass(slots=True)(cls)


def direct_conversation_id(a: str, b: str) -> str:
    """The same id for the pair whoever writes first, and opaque to clients."""
    return "d_" + hashlib.sha256("|".join(sorted((a, b))).encode()).hexdigest()[:24]


RANK: dict[Role, int] = {"owner": 0, "admin": 1, "member": 2}
NEVER = datetime.min.replace(tzinfo=timezone.utc)


def is_visible(
    recalled: bool, expires_at: datetime | None, now: datetime, burns_at: datetime | None = None, burned: bool = False
) -> bool:
    """The one visibility rule: a message is shown until it is recalled, its time is up, or (burn
    after reading) it burns. (Stores apply it to projected documents through this function too.)"""
    return (
        not recalled
        and not burned
        and (expires_at is None or expires_at > now)
        and (burns_at is None or burns_at > now)
    )


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


@record
class Member:
    """A group member: their role, and where their view of the conversation starts."""

    role: Role
    joined_at: datetime
    joined_seq: int
    since: int  # orders members by how long they have stood (ties at creation: list order)
    muted_until: datetime | None = None  # set by the owner or an admin; ends by itself

    def muted_at(self, now: datetime) -> datetime | None:
        """Until when the member is muted, if they are at `now`."""
        return self.muted_until if self.muted_until is not None and self.muted_until > now else None


NO_MEMBERS: Mapping[str, Member] = MappingProxyType({})


def _no_members() -> Mapping[str, Member]:
    return NO_MEMBERS


@record
class Conversation:
    """A direct chat (two members, never changes) or a group's conversation (members with roles).

    `last_seq` is the seq the conversation's next message builds on, as read (0 when the store
    did not need to read it: a direct conversation this process already knows).
    """

    conversation_id: str
    kind: Kind
    members: Sequence[str]
    last_seq: int = 0
    created_at: datetime | None = None
    last_at: datetime | None = None
    group_id: str | None = None
    name: str | None = None
    # A group's members with their roles and join points; none for direct chats.
    roster: Mapping[str, Member] = field(default_factory=_no_members)
    # A group's settings (docs/protocol.md "Group administration").
    description: str = ""
    avatar_url: str | None = None
    everyone_muted: bool = False  # only the owner and admins may send
    approval_required: bool = False  # joining by invite link files a join request
    # End-to-end encrypted from this time on (docs/security.md: Olm direct, Megolm groups); for good.
    encrypted_at: datetime | None = None

    def has_member(self, user_id: str) -> bool:
        return user_id in self.members

    def others(self, user_id: str) -> list[str]:
        return [m for m in self.members if m != user_id]

    def role_of(self, user_id: str) -> Role | None:
        member = self.roster.get(user_id)
        return member.role if member else None

    def joined_seq(self, user_id: str) -> int:
        """Where a member's view starts: the seq at which they joined (0 for direct chats)."""
        member = self.roster.get(user_id)
        return member.joined_seq if member else 0

    def sees(self, user_id: str, message: "Message | Placed") -> bool:
        """A member sees the messages stored after they joined."""
        return self.has_member(user_id) and message.seq > self.joined_seq(user_id)

    def seen_by(self, message: "Message") -> list[str]:
        """The members who can see `message` (those who joined before it)."""
        return [m for m in self.members if self.sees(m, message)]

    def seniority(self) -> list[str]:
        """Members by rank (owner, admins, members), then by how long they have stood."""
        roster = self.roster
        return sorted(roster, key=lambda u: (RANK[roster[u].role], roster[u].since))

    def with_last_seq(self, last_seq: int) -> "Conversation":
        return replace(self, last_seq=last_seq)

    @property
    def active_at(self) -> datetime:
        """When something last happened here (the latest message, else the creation)."""
        return self.last_at or self.created_at or NEVER


@record
class GroupChanges:
    """What `groups.update` changes (None: unchanged); `avatar_url` None with `clear_avatar`: removed."""

    name: str | None = None
    description: str | None = None
    avatar_url: str | None = None
    clear_avatar: bool = False
    everyone_muted: bool | None = None
    approval_required: bool | None = None


@record
class InviteLink:
    """A group's invite link; `uses` counts joins and filed requests (never past `max_uses`)."""

    code: str
    group_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    max_uses: int | None
    uses: int
    revoked: bool = False

    def unusable_because(self, now: datetime) -> str | None:
        """Why the link cannot be used now (the end of "this invite link …"), or None."""
        if self.revoked:
            return "was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "has expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "has been used up"
        return None


@record
class JoinRequest:
    group_id: str
    user_id: str
    requested_at: datetime


@record
class Draft:
    """A message as its sender wrote it, before the store gives it its seq."""

    message_id: str
    from_user_id: str
    client_msg_id: str
    to: Mapping[str, str]  # {"user_id": ...} or {"group_id": ...}
    sent_at: datetime
    text: str | None = None
    file: chat.Attachment | None = None
    expires_at: datetime | None = None
    call: CallRecord | None = None  # a call's message, asked for by calls (services/chat/domain/call_messages.py)
    reply_to: Quote | None = None
    mentions: tuple[str, ...] = ()
    burn_seconds: int | None = None  # burn after reading
    burns_at: datetime | None = None  # unopened: the cap; opened: opened_at + burn_seconds
    sticker: chat.Sticker | None = None  # a sticker message (no text, no file)
    voice: chat.Voice | None = None  # a voice message: `file` is its audio
    encrypted: Mapping[str, Any] | None = None  # the envelope as sent (shared/contracts/e2e.py Encrypted)

    def stored_at(self, conversation_id: str, seq: int) -> "Message":
        return Message(
            self.message_id, conversation_id, seq, self.from_user_id, self.client_msg_id, self.to, self.sent_at,
            self.text, self.file, self.expires_at, call=self.call, reply_to=self.reply_to, mentions=self.mentions,
            burn_seconds=self.burn_seconds, burns_at=self.burns_at, sticker=self.sticker, voice=self.voice,
            encrypted=self.encrypted,
        )


@record
class Message:
    message_id: str
    conversation_id: str
    seq: int
    from_user_id: str
    client_msg_id: str
    to: Mapping[str, str]
    sent_at: datetime
    text: str | None = None
    file: chat.Attachment | None = None
    expires_at: datetime | None = None
    recalled: bool = False
    call: CallRecord | None = None
    edited_at: datetime | None = None
    reply_to: Quote | None = None
    # emoji -> the users who reacted with it, in the order the emoji were first used.
    reactions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    mentions: Sequence[str] = ()
    burn_seconds: int | None = None
    burns_at: datetime | None = None
    opened_at: datetime | None = None
    burned: bool = False  # its content destroyed; the seq stays
    hidden_for: Collection[str] = frozenset()  # users who deleted it for themselves
    sticker: chat.Sticker | None = None
    voice: chat.Voice | None = None
    # End-to-end encrypted: the envelope as sent, JSON (passed through whole, never read).
    encrypted: Mapping[str, Any] | None = None

    def is_visible(self, now: datetime) -> bool:
        return is_visible(self.recalled, self.expires_at, now, self.burns_at, self.burned)

    def visible_to(self, user_id: str, now: datetime) -> bool:
        """Visible, and not deleted by `user_id` for themselves."""
        return self.is_visible(now) and user_id not in self.hidden_for

    def is_expired(self, now: datetime) -> bool:
        return is_expired(self.expires_at, now)

    def content_sealed_for(self, viewer: str) -> bool:
        """Burn after reading: the recipient gets the content only through message.open."""
        return self.burn_seconds is not None and viewer != self.from_user_id

    def to_contract(self, viewer: str) -> chat.Message:
        """The message as `viewer` sees it (a burn-after-reading message's recipient gets it sealed)."""
        return self.contract(sealed=self.content_sealed_for(viewer))

    def contract(self, *, sealed: bool = False) -> chat.Message:
        return chat.Message(
            message_id=self.message_id,
            conversation_id=self.conversation_id,
            seq=self.seq,
            from_user_id=self.from_user_id,
            to=dict(self.to),
            text=None if sealed else self.text,
            file=None if sealed else self.file,
            encrypted=None if sealed or self.encrypted is None else e2e.ENVELOPE.validate_python(self.encrypted),
            sticker=None if sealed else self.sticker,
            voice=None if sealed else self.voice,
            call=self.call,
            sent_at=iso(self.sent_at),
            expires_at=iso(self.expires_at) if self.expires_at else None,
            edited_at=iso(self.edited_at) if self.edited_at else None,
            reply_to=self.reply_to,
            reactions=self.reaction_list() or None,
            mentions=list(self.mentions) or None,
            burn=self.burn(),
        )

    def contract_json(self, *, sealed: bool = False) -> dict[str, Any]:
        """`contract(sealed).model_dump(mode="json")`, built without the model: what a push of it
        carries (a chat.Message model per push, only to be dumped again, was ~4 % of chat at
        W = 10: issue 26). Same keys in the same order; absent fields left out, as the model's
        serializer does."""
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "from_user_id": self.from_user_id,
            "to": dict(self.to),
        }
        if not sealed:
            if self.text is not None:
                data["text"] = self.text
            if self.file is not None:
                data["file"] = self.file.model_dump(mode="json")
            if self.encrypted is not None:
                data["encrypted"] = self.encrypted
        if self.call is not None:
            data["call"] = self.call.model_dump(mode="json")
        data["sent_at"] = iso(self.sent_at)
        if self.expires_at:
            data["expires_at"] = iso(self.expires_at)
        if self.edited_at:
            data["edited_at"] = iso(self.edited_at)
        if self.reply_to is not None:
            data["reply_to"] = self.reply_to.model_dump(mode="json")
        reactions = [
            {"emoji": e, "count": len(users), "user_ids": list(users)} for e, users in self.reactions.items() if users
        ]
        if reactions:
            data["reactions"] = reactions
        if self.mentions:
            data["mentions"] = list(self.mentions)
        if (burn := self.burn()) is not None:
            data["burn"] = burn.model_dump(mode="json")
        if not sealed:
            if self.sticker is not None:
                data["sticker"] = self.sticker.model_dump(mode="json")
            if self.voice is not None:
                data["voice"] = self.voice.model_dump(mode="json")
        return data

    def reaction_list(self) -> list[Reaction]:
        return [Reaction(emoji=e, count=len(users), user_ids=list(users)) for e, users in self.reactions.items() if users]

    def burn(self) -> Burn | None:
        if self.burn_seconds is None:
            return None
        return Burn(
            seconds=self.burn_seconds,
            opened_at=iso(self.opened_at) if self.opened_at else None,
            burns_at=iso(self.burns_at) if self.burns_at else None,
        )

    def stored(self, device_id: str | None, again: bool) -> events.StoredMessage:
        """What `messages.stored` says of it: its kind and a preview, never a burn-after-reading
        message's content."""
        if self.call is not None:
            kind: events.MessageKind = "call"
        elif self.encrypted is not None:
            kind = "encrypted"
        elif self.sticker is not None:
            kind = "sticker"
        elif self.voice is not None:
            kind = "voice"
        elif self.file is not None:
            kind = "image" if self.file.content_type.startswith("image/") else "file"
        else:
            kind = "text"
        sealed = self.burn_seconds is not None
        return events.StoredMessage(
            message_id=self.message_id,
            seq=self.seq,
            from_user_id=self.from_user_id,
            from_device_id=device_id,
            sent_at=iso(self.sent_at),
            kind=kind,
            preview=self.text[:events.PREVIEW_CHARS] if self.text and not sealed else None,
            mentions=list(self.mentions),
            burn_after_reading=sealed,
            expires_at=iso(self.expires_at) if self.expires_at else None,
            reply_to_message_id=self.reply_to.message_id if self.reply_to else None,
            again=again,
        )

    def quote(self) -> Quote:
        """What a reply to this message carries."""
        return Quote(
            message_id=self.message_id,
            from_user_id=self.from_user_id,
            text=self.text[:QUOTE_CHARS] if self.text else None,
            file_name=self.file.name if self.file else None,
            sticker_url=self.sticker.url if self.sticker else None,
            voice=True if self.voice else None,
        )

    def send_reply(self) -> chat.MessageSendReply:
        return chat.MessageSendReply(
            message_id=self.message_id, conversation_id=self.conversation_id, seq=self.seq, sent_at=iso(self.sent_at)
        )


@record
class Placed:
    """Where a visible message sits (what deciding who may see its file needs)."""

    conversation_id: str
    seq: int


@record
class Appended:
    """What storing a draft gave: the stored message, or (`first` False) the one its sender
    had already sent with the same client_msg_id."""

    message: Message
    first: bool


@record
class Friendship:
    users: tuple[str, str]
    requester: str
    status: FriendshipStatus
    created_at: datetime

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def other(self, me: str) -> str:
        return self.users[1] if self.users[0] == me else self.users[0]

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def pending_from(self, user_id: str) -> bool:
        return self.status == "pending" and self.requester == user_id


@record
class Cursor:
    """How far one device of a user has acknowledged one conversation."""

    user_id: str
    device_id: str
    conversation_id: str
    seq: int


@record
class DeviceMessage:
    """A to-device message (devices.send): an Olm ciphertext from one device to another (of the
    same user, or of one sharing an encrypted conversation), kept until that device acknowledges
    it (docs/security.md)."""

    message_id: str
    user_id: str  # the target's
    device_id: str  # the target
    from_user_id: str
    from_device_id: str
    sender_key: str
    type: int
    body: str
    sent_at: datetime
    expires_at: datetime

    @property
    def size(self) -> int:
        return len(self.body.encode())

    def push(self) -> Push:
        """The `device.message` push, its data built as JSON directly."""
        return Push(type="device.message", data={
            "id": self.message_id, "from_user_id": self.from_user_id, "from_device_id": self.from_device_id,
            "sender_key": self.sender_key, "type": self.type, "body": self.body, "sent_at": iso(self.sent_at),
        })
