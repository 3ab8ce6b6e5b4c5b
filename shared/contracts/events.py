"""Domain events about messages, published by chat on `<ns>.events` once what they say is stored
(and about reads and calls: `conversation.read` from chat, `call.*` from calls): the seam that
offline push, search indexing, webhooks and audit attach to without touching the send path.

Delivery is at least once: an event is published with the broker's confirm before chat settles
the command that caused it, so a crash in between publishes it again (the command comes back).
Consumers are idempotent: a message is identified by (conversation_id, seq) or message_id, a
change by (message_id, change, at).

Events carry what consumers need to act without asking chat (who should see the message, which of
their devices had it pushed live, a short preview), bounded in size: a preview, never a whole
text, and nothing of a burn-after-reading message's content.
"""
from typing import Literal

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.calls import EndReason, Media
from shared.contracts.wire import DeviceAddress

# A preview is at most this many characters of a text (a notification shows no more).
PREVIEW_CHARS = 120

MessageKind = Literal["text", "file", "image", "voice", "sticker", "call", "encrypted"]
Change = Literal["edited", "recalled", "reactions", "burned", "hidden", "opened"]


class StoredMessage(Contract):
    """One message of a `messages.stored` event."""

    message_id: str
    seq: int
    from_user_id: str
    from_device_id: str | None = None
    sent_at: str
    kind: MessageKind
    # The first PREVIEW_CHARS characters of its text; absent for burn after reading (its content
    # is the recipient's to open) and for messages without text.
    preview: str | None = None
    mentions: list[str] = Field(default_factory=list)
    burn_after_reading: bool = False
    expires_at: str | None = None
    reply_to_message_id: str | None = None
    # Stored earlier and sent again (a retry, or chat repeating what it may not have announced
    # after a crash): a consumer that already had it skips it.
    again: bool = False


class ConversationStored(Contract):
    """The messages a batch stored in one conversation, in seq order, and who they are for."""

    conversation_id: str
    kind: Literal["direct", "group"]
    group_id: str | None = None
    group_name: str | None = None
    first_seq: int
    last_seq: int
    messages: list[StoredMessage]
    # Every member who should see them, their senders included (a sender's other devices get
    # them too; a notifier leaves out the sender).
    recipients: list[str]
    # The devices they were pushed to live (handed to the gateway holding the device's socket);
    # a recipient's device not listed was not reached and has them from its next sync.
    reached: list[DeviceAddress]


class MessagesStored(Contract):
    """Event `messages.stored`: one per batch chat stored (a send batch, a call's message), after
    the database commit, grouped by conversation in the order they were stored."""

    batch_id: str
    conversations: list[ConversationStored]


class MessageChanged(Contract):
    """Event `message.changed`: a stored message was edited, recalled, reacted to, opened or
    burned (burn after reading), or hidden by one member ("delete for me": `by_user_id` only)."""

    conversation_id: str
    message_id: str
    seq: int
    change: Change
    by_user_id: str
    at: str
    # Who sees the change (for a hide: the one who hid it).
    audience: list[str]
    # An edit: the first PREVIEW_CHARS characters of the new text (a notification showing the old
    # one is rewritten); absent for every other change.
    preview: str | None = None


class ConversationRead(Contract):
    """Event `conversation.read`: a member's read marker moved forward (once per advance), on
    one of their devices. Offline push withdraws the conversation's notification from their other
    devices and lowers their badge."""

    conversation_id: str
    user_id: str
    device_id: str | None = None  # the device that read; None: not said
    seq: int
    at: str


class CallRinging(Contract):
    """Event `call.ringing` (calls): a call rings the callee's live devices (`reached`); offline
    push rings their other devices."""

    call_id: str
    conversation_id: str
    caller_id: str
    callee_id: str
    media: Media
    ring_until: str
    reached: list[DeviceAddress]


class CallAnswered(Contract):
    """Event `call.answered` (calls): the callee accepted on `device_id`; their other devices
    stop ringing."""

    call_id: str
    conversation_id: str
    callee_id: str
    device_id: str


class CallEnded(Contract):
    """Event `call.ended` (calls): declined, cancelled, unanswered, hung up or lost; nothing of
    it rings any more."""

    call_id: str
    conversation_id: str
    caller_id: str
    callee_id: str
    reason: EndReason
