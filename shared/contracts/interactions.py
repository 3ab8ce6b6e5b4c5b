"""What people do with messages after sending them (docs/protocol.md "Edit, reply, reactions,
mentions, burn after reading, delete for me, receipts"): the models of those operations and
pushes, and the parts they add to a stored message."""
from typing import Annotated

from pydantic import StringConstraints, model_validator

from shared.contracts.base import Contract, SparseContract
from shared.contracts.e2e import Encrypted

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
# One emoji (a grapheme of emoji code points: ZWJ sequences, skin tones and flags included);
# the chat service checks it is one (shared.emoji.is_single_emoji) and answers bad_request.
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=32)]

QUOTE_CHARS = 100  # of the quoted text a reply carries
MAX_DISTINCT_REACTIONS = 20  # different emoji on one message; past it: conflict
MAX_MENTIONS = 50
BURN_MIN_SECONDS, BURN_MAX_SECONDS = 1, 3600


# --- parts of a message ---------------------------------------------------------------------------
class Quote(SparseContract):
    """What a reply shows of the message it answers, without another fetch."""

    message_id: str
    from_user_id: str
    text: str | None = None  # its first QUOTE_CHARS characters
    file_name: str | None = None
    # What it is when that is not text: a sticker (drawn small in the quote) or a voice message.
    sticker_url: str | None = None
    voice: bool | None = None


class Reaction(Contract):
    emoji: str
    count: int
    user_ids: list[str]


class Burn(SparseContract):
    """Burn after reading: the recipient sees the content only by opening it (`message.open`),
    and it is destroyed `seconds` after that (or, never opened, at `burns_at`)."""

    seconds: int
    opened_at: str | None = None
    burns_at: str | None = None


class Position(Contract):
    """How far a member has read (or, for delivery, received on some device) a conversation."""

    user_id: str
    seq: int


# --- requests and replies -----------------------------------------------------------------------
class MessageEdit(Contract):
    """The new `text`, or in an end-to-end encrypted conversation the new `encrypted` envelope."""

    message_id: Id
    text: Text | None = None
    encrypted: Encrypted | None = None

    @model_validator(mode="after")
    def _one_new_content(self) -> "MessageEdit":
        if (self.text is None) == (self.encrypted is None):
            raise ValueError("text: give exactly one of text or encrypted")
        return self


class MessageEditReply(Contract):
    message_id: str
    edited_at: str


class ReactionChange(Contract):
    """reaction.add and reaction.remove."""

    message_id: Id
    emoji: Emoji


class MessageRef(Contract):
    """message.open (burn after reading) and message.hide (delete for me)."""

    message_id: Id


# --- pushes ------------------------------------------------------------------------------------
class MessageEditedPush(SparseContract):
    conversation_id: str
    message_id: str
    seq: int
    text: str | None = None
    encrypted: Encrypted | None = None  # instead of `text`, in an encrypted conversation
    edited_at: str


class MessageReactionsPush(Contract):
    conversation_id: str
    message_id: str
    seq: int
    reactions: list[Reaction]


class MessageOpenedPush(Contract):
    """To the sender and the recipient's devices: the recipient opened a burn-after-reading message."""

    conversation_id: str
    message_id: str
    opened_at: str
    burns_at: str


class MessageGonePush(Contract):
    """message.burned (to both sides) and message.hidden (to my own other devices)."""

    conversation_id: str
    message_id: str


class ReceiptDeliveredPush(Contract):
    """To the other members: `user_id`'s first device received the conversation up to `seq`."""

    conversation_id: str
    user_id: str
    seq: int

