"""What people do with a message after sending it: edit it, react to it, open one that burns
after reading (and its burning), delete it for themselves (docs/protocol.md "Edit, reply,
reactions, mentions, burn after reading, delete for me, receipts").

Each change is stored first, then pushed to the devices of those who can see the message (a
device that was away catches up on its next sync: `changed_at`, messaging.sync_device), then
told as `message.changed` on `<ns>.events`. A change asked again that is already so is told
again (the first telling may have failed after the write): consumers are idempotent.
"""
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from services.chat.domain.encryption import check_content
from services.chat.domain.ports import MessageParts
from services.chat.domain.records import Conversation, Message
from shared.contracts import chat
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.events import PREVIEW_CHARS, Change, MessageChanged
from shared.contracts.interactions import (
    MAX_DISTINCT_REACTIONS,
    MessageEdit,
    MessageEditedPush,
    MessageEditReply,
    MessageGonePush,
    MessageOpenedPush,
    MessageReactionsPush,
    ReactionChange,
)
from shared.delivery import push
from shared.emoji import is_single_emoji
from shared.logs import log_event

log = logging.getLogger("parley.chat")

Device = tuple[str, str | None]


class InteractionParts(MessageParts, Protocol):
    """What acting on stored messages needs (MessageParts), and how long after sending a
    message can be edited (the edit_window_seconds setting)."""

    @property
    def edit_window(self) -> timedelta: ...


async def tell_changed(
    parts: MessageParts, message: Message, change: Change, by: str, audience: Iterable[str], at: datetime
) -> None:
    """`message.changed` for the event's consumers (search, webhooks, audit, push)."""
    preview = message.text[:PREVIEW_CHARS] if change == "edited" and message.text else None
    await parts.events.publish_event("message.changed", MessageChanged(
        conversation_id=message.conversation_id, message_id=message.message_id, seq=message.seq, change=change,
        by_user_id=by, at=iso(at), audience=list(dict.fromkeys(audience)), preview=preview,
    ))


async def edit_message(
    request: MessageEdit, user_id: str, device_id: str | None, parts: InteractionParts
) -> MessageEditReply:
    """The sender rewrites the text of their own message, within the edit window (in an
    end-to-end encrypted conversation: replaces its envelope)."""
    now, window = utc_now(), parts.edit_window
    message, conversation = await _seen_by(request.message_id, user_id, now, parts)
    if message.from_user_id != user_id:
        raise ParleyError.forbidden("only the sender can edit a message")
    check_content(conversation, request.encrypted)
    content = message.encrypted if request.encrypted is not None else message.text
    if content is None or message.call is not None or message.burn_seconds is not None:
        raise ParleyError.bad_request(
            "only the text of a message can be edited (not a file, call or burning one)" if request.encrypted is None
            else "only an encrypted message's envelope can be replaced (not a file, call or burning one)"
        )
    if now - message.sent_at > window:
        raise ParleyError.forbidden(f"a message can be edited only within {_span(window)} of sending")
    envelope = request.encrypted.model_dump(mode="json") if request.encrypted is not None else None
    edited = await parts.messages.edit(message.message_id, now, text=request.text, encrypted=envelope)
    if edited is None or edited.edited_at is None:
        raise ParleyError.not_found("no such message (recalled meanwhile)")
    data = MessageEditedPush(
        conversation_id=edited.conversation_id, message_id=edited.message_id, seq=edited.seq, text=request.text,
        encrypted=request.encrypted, edited_at=iso(edited.edited_at),
    )
    audience = conversation.seen_by(edited)
    await parts.deliver.to_users(audience, [push("message.edited", data)], except_device=(user_id, device_id))
    await tell_changed(parts, edited, "edited", user_id, audience, now)
    return MessageEditReply(message_id=edited.message_id, edited_at=data.edited_at)


async def change_reaction(
    request: ReactionChange, add: bool, user_id: str, device_id: str | None, parts: InteractionParts
) -> None:
    """Add or take back an emoji; a push only when the totals changed."""
    if not is_single_emoji(request.emoji):
        raise ParleyError.bad_request("data.emoji: one emoji (a single grapheme) is expected")
    now = utc_now()
    message, conversation = await _seen_by(request.message_id, user_id, now, parts)
    if add and conversation.encrypted_at is not None:
        raise ParleyError.bad_request(
            "data.message_id: reactions are unavailable in an end-to-end encrypted conversation (the server would see them)"
        )
    users = message.reactions.get(request.emoji, ())
    if (user_id in users) == add:  # already so: no push, told again
        await tell_changed(parts, message, "reactions", user_id, conversation.seen_by(message), now)
        return
    if add and not users and sum(1 for u in message.reactions.values() if u) >= MAX_DISTINCT_REACTIONS:
        raise ParleyError.conflict(f"a message holds at most {MAX_DISTINCT_REACTIONS} different reactions")
    changed = await parts.messages.react(message.message_id, request.emoji, user_id, add, now)
    if changed is None:
        raise ParleyError.not_found("no such message")
    data = MessageReactionsPush(
        conversation_id=changed.conversation_id, message_id=changed.message_id, seq=changed.seq,
        reactions=changed.reaction_list(),
    )
    # The reacting device too: its reply is `{}`, and the totals may include others' at the same moment.
    audience = conversation.seen_by(changed)
    await parts.deliver.to_users(audience, [push("message.reactions", data)])
    await tell_changed(parts, changed, "reactions", user_id, audience, now)


async def open_message(
    message_id: str, user_id: str, device_id: str | None, parts: InteractionParts
) -> chat.Message:
    """The recipient opens a burn-after-reading message: the content, once its timer runs."""
    now = utc_now()
    message, conversation = await _seen_by(message_id, user_id, now, parts)
    if message.burn_seconds is None:
        raise ParleyError.bad_request("this message does not burn after reading; it is there to read")
    if message.from_user_id == user_id:
        raise ParleyError.forbidden("only the recipient opens a burn-after-reading message")
    opened = await parts.messages.open_sealed(message_id, now)
    if opened is None or opened.opened_at is None or opened.burns_at is None:
        raise ParleyError.not_found("no such message (it has burned)")
    if message.opened_at is None:
        data = MessageOpenedPush(
            conversation_id=opened.conversation_id, message_id=opened.message_id, opened_at=iso(opened.opened_at),
            burns_at=iso(opened.burns_at),
        )
        await parts.deliver.to_users(
            conversation.members, [push("message.opened", data)], except_device=(user_id, device_id)
        )
    await tell_changed(parts, opened, "opened", user_id, conversation.members, opened.opened_at)
    return opened.contract()


async def burn_due(now: datetime, parts: InteractionParts) -> int:
    """Destroy what is due to burn and tell both sides; how many burned (one replica at a time
    runs it, and burning one is a conditional update: only one run pushes it)."""
    burned = 0
    for message in await parts.messages.due_to_burn(now):
        if not await parts.messages.burn(message.message_id, now):
            continue
        burned += 1
        conversation = await parts.conversations.conversation(message.conversation_id)
        if conversation is not None:
            data = MessageGonePush(conversation_id=message.conversation_id, message_id=message.message_id)
            await parts.deliver.to_users(conversation.members, [push("message.burned", data)])
            await tell_changed(parts, message, "burned", message.from_user_id, conversation.members, now)
    if burned:
        log_event(log, "messages.burned", count=burned)
    return burned


async def hide_message(message_id: str, user_id: str, device_id: str | None, parts: InteractionParts) -> None:
    """Delete for me: gone from my devices only; the others keep it."""
    now = utc_now()
    message, _ = await _seen_by(message_id, user_id, now, parts)
    await parts.messages.hide(message.message_id, user_id)
    data = MessageGonePush(conversation_id=message.conversation_id, message_id=message.message_id)
    await parts.deliver.to_users([user_id], [push("message.hidden", data)], except_device=(user_id, device_id))
    await tell_changed(parts, message, "hidden", user_id, [user_id], now)


async def _seen_by(message_id: str, user_id: str, now: datetime, parts: MessageParts) -> tuple[Message, Conversation]:
    """The message and its conversation, if `user_id` can see it now; else not_found (recalled,
    expired, burned, hidden by them, before they joined, or not theirs: all alike)."""
    message = await parts.messages.message(message_id)
    conversation = await parts.conversations.conversation(message.conversation_id) if message else None
    if message is None or conversation is None or not conversation.sees(user_id, message):
        raise ParleyError.not_found("no such message")
    if not message.visible_to(user_id, now):
        raise ParleyError.not_found("no such message (recalled, expired, burned or deleted)")
    return message, conversation


def _span(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{window.total_seconds():g} s"
