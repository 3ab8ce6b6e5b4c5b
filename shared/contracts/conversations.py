"""Conversations list, read receipts, typing, recall (PROTOCOL.md, "Messages")."""
from pydantic import Field

from shared.contracts.auth import UserProfile
from shared.contracts.base import Contract, SparseContract
from shared.contracts.chat import Id, Message, Seq, Target
from shared.contracts.interactions import Position


class ConversationsList(Contract):
    pass


class GroupRef(Contract):
    group_id: str
    name: str


class ConversationEntry(SparseContract):
    conversation_id: str
    kind: str  # "direct" | "group"
    peer: UserProfile | None = None
    group: GroupRef | None = None
    last_seq: int
    last_message: Message | None = None
    unread: int = Field(ge=0)
    unread_mentions: int = Field(0, ge=0)  # unread messages that mention me
    encrypted_at: str | None = None  # end-to-end encrypted since (absent: not encrypted)
    # The other members' read and delivery positions.
    read_by: list[Position] = []
    delivered_to: list[Position] = []


class ConversationsListReply(Contract):
    conversations: list[ConversationEntry]


class MessageRead(Contract):
    conversation_id: Id
    seq: Seq


class ReceiptReadPush(Contract):
    conversation_id: str
    user_id: str
    seq: int


class MessageRecall(Contract):
    message_id: Id


class MessageRecalledPush(Contract):
    conversation_id: str
    message_id: str


class Typing(Contract):
    conversation_id: Id


class TypingPush(Contract):
    conversation_id: str
    user_id: str


# --- end-to-end encryption (docs/security.md) ----------------------------------------------------
class ConversationEncrypt(Contract):
    """Turn end-to-end encryption on, for good: in the direct conversation with a friend (Olm), or
    in a group the caller owns or administers (Megolm)."""

    to: Target


class ConversationEncryptReply(Contract):
    conversation_id: str
    encrypted_at: str  # the first time's: asking again changes nothing


class ConversationEncryptedPush(Contract):
    """Push `conversation.encrypted` to the conversation's users' devices (both, or every member)."""

    conversation_id: str
    by_user_id: str
    encrypted_at: str
