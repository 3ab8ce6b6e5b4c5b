"""The conversations list with unread counts, read receipts, recall and typing."""
import asyncio
from datetime import timedelta
from typing import Protocol

from shared.delivery import push
from services.chat.domain.messaging import (
    conversation_up_to, known_last_seq, member_conversation, positions_of_others,
)
from services.chat.domain.interactions import tell_changed
from services.chat.domain.ports import Cursors, MessageParts, Profiles, TypingNotices
from shared.contracts.base import iso, utc_now
from shared.contracts.conversations import (
    ConversationEntry,
    ConversationsListReply,
    GroupRef,
    MessageRead,
    MessageRecall,
    MessageRecalledPush,
    ReceiptReadPush,
    Typing,
    TypingPush,
)
from shared.contracts.errors import ParleyError
from shared.contracts.events import ConversationRead

RECALL_WINDOW = timedelta(minutes=10)


class ConversationParts(MessageParts, Protocol):
    """What the conversations list, receipts, recall and typing need besides acting on stored
    messages (MessageParts): the cursors and read markers, auth's profiles (a direct
    conversation's peer) and the typing throttle."""

    @property
    def cursors(self) -> Cursors: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def typing(self) -> TypingNotices: ...


async def list_conversations(user_id: str, parts: ConversationParts) -> ConversationsListReply:
    """Newest activity first; `unread` counts others' visible messages above the read marker
    (`unread_mentions`: those that mention the user, counted in the same pass); `read_by` and
    `delivered_to` are the other members' positions."""
    messages, cursors = parts.messages, parts.cursors
    now = utc_now()
    convs = await parts.conversations.of_user(user_id)
    read = await cursors.read_positions(user_id)
    peers = {
        c.conversation_id: next((m for m in c.members if m != user_id), user_id) for c in convs if c.kind == "direct"
    }
    found = await parts.profiles.get(sorted(set(peers.values())))
    entries = []
    for conv in convs:
        cid, floor = conv.conversation_id, conv.joined_seq(user_id)
        latest, (unread, mentions), (read_markers, delivered_markers) = await asyncio.gather(
            messages.latest(cid, floor, now, conv.last_seq, viewer=user_id),
            messages.unread_counts(cid, user_id, max(floor, read.get(cid, 0)), now, conv.last_seq),
            cursors.positions(cid, conv.others(user_id)),
        )
        read_by, delivered_to = positions_of_others(conv, user_id, read_markers, delivered_markers)
        entry = ConversationEntry(
            conversation_id=cid,
            kind=conv.kind,
            peer=found.get(peers[cid]) if conv.kind == "direct" else None,
            group=GroupRef(group_id=conv.group_id, name=conv.name) if conv.group_id and conv.name is not None else None,
            last_seq=max(known_last_seq(conv, messages), latest.seq if latest else 0),
            last_message=latest.to_contract(user_id) if latest else None,
            unread=unread,
            unread_mentions=mentions,
            encrypted_at=iso(conv.encrypted_at) if conv.encrypted_at else None,
            read_by=read_by,
            delivered_to=delivered_to,
        )
        # last_at is recorded lazily (storage/appender.py): the newest message read says it too.
        entries.append((max(conv.active_at, latest.sent_at) if latest else conv.active_at, entry))
    entries.sort(key=lambda e: e[0], reverse=True)
    return ConversationsListReply(conversations=[entry for _, entry in entries])


async def mark_read(request: MessageRead, user_id: str, device_id: str | None, parts: ConversationParts) -> None:
    """Move the user's read marker and tell the other participants (once per advance); then
    `conversation.read` for the event's consumers (offline push withdraws the conversation's
    notification from the user's other devices). Told once per advance too: a retry after a
    failed telling finds the marker moved and tells nothing (a notification left shown)."""
    conversation = await conversation_up_to(
        request.conversation_id, request.seq, user_id, parts.conversations, parts.messages
    )
    if await parts.cursors.mark_read(user_id, request.conversation_id, request.seq):
        receipt = ReceiptReadPush(conversation_id=request.conversation_id, user_id=user_id, seq=request.seq)
        await parts.deliver.to_users(conversation.others(user_id), [push("receipt.read", receipt)])
        await parts.events.publish_event("conversation.read", ConversationRead(
            conversation_id=request.conversation_id, user_id=user_id, device_id=device_id, seq=request.seq,
            at=iso(utc_now()),
        ))


async def recall_message(
    request: MessageRecall, user_id: str, device_id: str | None, parts: ConversationParts
) -> None:
    """The sender takes a message back within 10 minutes; it disappears from history and sync.
    Members who joined after it never saw it and are not told about it either. A recall asked
    again is told again as `message.changed` (the first telling may have failed after the write)."""
    message = await parts.messages.message(request.message_id)
    conversation = await parts.conversations.conversation(message.conversation_id) if message else None
    if message is None or conversation is None or not conversation.has_member(user_id):
        raise ParleyError.not_found("no such message")
    now = utc_now()
    if message.is_expired(now) or not conversation.sees(user_id, message):
        raise ParleyError.not_found("no such message")
    if message.from_user_id != user_id:
        raise ParleyError.forbidden("only the sender can recall a message")
    audience = conversation.seen_by(message)
    if message.recalled:
        await tell_changed(parts, message, "recalled", user_id, audience, now)
        return
    if now - message.sent_at > RECALL_WINDOW:
        raise ParleyError.forbidden("a message can be recalled only within 10 minutes of sending")
    await parts.messages.recall(request.message_id, now)
    data = MessageRecalledPush(conversation_id=conversation.conversation_id, message_id=request.message_id)
    await parts.deliver.to_users(audience, [push("message.recalled", data)], except_device=(user_id, device_id))
    await tell_changed(parts, message, "recalled", user_id, audience, now)


async def send_typing(request: Typing, user_id: str, parts: ConversationParts) -> None:
    """Pushed to the others online, at most once a second per (conversation, user); never stored."""
    conversation = await member_conversation(request.conversation_id, user_id, parts.conversations)
    if await parts.typing.first_in_window(request.conversation_id, user_id):
        data = TypingPush(conversation_id=request.conversation_id, user_id=user_id)
        await parts.deliver.to_users(conversation.others(user_id), [push("typing", data)])
