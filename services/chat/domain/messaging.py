"""Reading messages: membership checks, history, and the sync stream on bind (the to-device
messages waiting for the device included; sending and acknowledging are
services/chat/domain/sending.py)."""
import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from shared.delivery import Deliverer, push
from services.chat.domain.device_messages import WaitingParts, stream_waiting
from services.chat.domain.ports import Conversations, Cursors, Messages
from services.chat.domain.records import Conversation, Message
from shared.contracts import chat
from shared.contracts.base import utc_now
from shared.contracts.conversations import MessageRecalledPush
from shared.contracts.envelope import Push
from shared.contracts.errors import ParleyError
from shared.contracts.interactions import MessageGonePush, Position
from shared.presence import DeviceSocket

# A device's last sync time is this replica's clock; a change is stamped by whichever replica
# made it. Changes this much older than the last sync are sent again: resending is harmless
# (clients replace by seq), missing one is not.
SYNC_CLOCK_MARGIN = timedelta(seconds=5)
CHANGE_READS_AT_ONCE = 16  # conversations whose changes are read concurrently on a sync


class MessagingParts(WaitingParts, Protocol):
    """What reading messages needs: the conversations, the messages, the devices' cursors and
    the users' markers, the pushes a sync streams, how many messages a sync push carries, and
    the to-device messages a sync ends with (WaitingParts)."""

    @property
    def conversations(self) -> Conversations: ...

    @property
    def messages(self) -> Messages: ...

    @property
    def cursors(self) -> Cursors: ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def sync_batch_size(self) -> int: ...


async def member_conversation(conversation_id: str, user_id: str, conversations: Conversations) -> Conversation:
    """The conversation, if `user_id` takes part in it; unknown and foreign look the same."""
    conversation = await conversations.conversation(conversation_id)
    if conversation is None or not conversation.has_member(user_id):
        raise ParleyError.forbidden("you are not a participant of this conversation")
    return conversation


def known_last_seq(conversation: Conversation, messages: Messages) -> int:
    """The highest seq known stored in the conversation without a read: its `last_seq` as read
    (recorded lazily, a floor: storage/appender.py), or what this process stored above it."""
    return max(conversation.last_seq, messages.known_top(conversation.conversation_id))


async def conversation_up_to(
    conversation_id: str, seq: int, user_id: str, conversations: Conversations, messages: Messages
) -> Conversation:
    """The conversation, if the user is in it and `seq` names a message that exists."""
    conversation = await member_conversation(conversation_id, user_id, conversations)
    conversation = conversation.with_last_seq(known_last_seq(conversation, messages))
    if seq > conversation.last_seq:
        # `last_seq` is recorded lazily (storage/appender.py), and a chat replica that died left
        # it behind what is stored (the next send would catch it up): catch it up now, so that
        # a client acking a message it did receive is not told its request is bad.
        last_seq = await messages.catch_up_last_seq(conversation_id)
        if seq > last_seq:
            raise ParleyError.bad_request(f"data.seq: beyond the last message ({last_seq})")
        conversation = conversation.with_last_seq(last_seq)
    return conversation


async def fetch_history(request: chat.HistoryFetch, user_id: str, parts: MessagingParts) -> chat.HistoryReply:
    """A member reads a group from the seq at which they joined; with the other members' read
    and delivered positions."""
    conversation = await member_conversation(request.conversation_id, user_id, parts.conversations)
    paging = parts.messages.page(
        request.conversation_id, request.before_seq, request.limit, utc_now(), conversation.last_seq,
        floor=conversation.joined_seq(user_id), viewer=user_id,
    )
    (found, has_more), (read, delivered) = await asyncio.gather(
        paging, parts.cursors.positions(request.conversation_id, conversation.others(user_id))
    )
    read_by, delivered_to = positions_of_others(conversation, user_id, read, delivered)
    return chat.HistoryReply(
        messages=[m.to_contract(user_id) for m in found], has_more=has_more, read_by=read_by, delivered_to=delivered_to
    )


def positions_of_others(
    conversation: Conversation, viewer: str, read: Mapping[str, int], delivered: Mapping[str, int]
) -> tuple[list[Position], list[Position]]:
    """`read_by` and `delivered_to`: the positions of the conversation's other members that have
    one (in a group, every other member's), in member order."""
    others = conversation.others(viewer)
    return (
        [Position(user_id=u, seq=read[u]) for u in others if u in read],
        [Position(user_id=u, seq=delivered[u]) for u in others if u in delivered],
    )


async def sync_device(bound: chat.DeviceBound, parts: MessagingParts) -> int:
    """Stream a freshly bound socket everything above its device's cursors, then what changed
    (edited, reacted to, opened, burned, recalled) at or below them since its last sync, then
    `sync.done`; returns how many messages were streamed.

    A device seen for the first time starts where the user's most advanced device is (and has
    no changes to catch up on).
    """
    conversations, messages, cursors, deliver = parts.conversations, parts.messages, parts.cursors, parts.deliver
    batch_size = parts.sync_batch_size
    now = utc_now()
    sock = DeviceSocket(bound.user_id, bound.device_id, bound.gateway_id, bound.conn_id)
    first, synced_at = await cursors.begin_sync(bound.user_id, bound.device_id, now)
    joined = await conversations.of_user(bound.user_id)
    ids = [c.conversation_id for c in joined]
    if first:
        await cursors.advance(bound.user_id, bound.device_id, await cursors.highest_of_user(bound.user_id, ids))
    positions = await cursors.of_device(bound.user_id, bound.device_id, ids)
    count = 0
    # Each batch is published while the next is read (in order: one publish out at a time).
    publishing: asyncio.Task[None] | None = None
    try:
        for conversation in joined:
            cid = conversation.conversation_id
            after = max(positions.get(cid, 0), conversation.joined_seq(bound.user_id))
            # `last_seq` is a floor (recorded lazily, storage/appender.py): the read above it is
            # open, so even a conversation whose cursor is at its last_seq costs one read.
            top = known_last_seq(conversation, messages)
            while True:
                batch = await messages.above(cid, after, batch_size, now, top, viewer=bound.user_id)
                if not batch:
                    break
                if publishing is not None:
                    await publishing
                pushes = [message_new(m, sealed=m.content_sealed_for(bound.user_id)) for m in batch]
                publishing = asyncio.create_task(deliver.to_socket(sock, pushes, sync=True))
                count += len(batch)
                after = batch[-1].seq
                if len(batch) < batch_size:  # the windows reached past the top: nothing more
                    break
        if publishing is not None:
            await publishing
    finally:
        if publishing is not None and not publishing.done():
            publishing.cancel()
    if synced_at is not None:
        changes = await _changes_since(joined, positions, bound.user_id, synced_at - SYNC_CLOCK_MARGIN, now, messages)
        for start in range(0, len(changes), batch_size):
            await deliver.to_socket(sock, changes[start:start + batch_size], sync=True)
    await stream_waiting(sock, now, parts)
    await deliver.to_socket(sock, [push("sync.done", chat.SyncDone(count=count))], sync=True)
    # Only a sync that went out to the end moves the mark (a failed one is caught up again).
    await cursors.finish_sync(bound.user_id, bound.device_id, now)
    return count


async def _changes_since(
    joined: list[Conversation], held: Mapping[str, int], user_id: str, since: datetime, now: datetime,
    messages: Messages,
) -> list[Push]:
    """What became of the messages a device holds (at or below its cursors) that changed after
    `since`: `message.changed` (the message as the user sees it now), `message.burned` or
    `message.recalled`; nothing for one the user hid or one that expired."""
    wanted = [(c, held[c.conversation_id]) for c in joined if held.get(c.conversation_id, 0) > c.joined_seq(user_id)]
    pushes: list[Push] = []
    for start in range(0, len(wanted), CHANGE_READS_AT_ONCE):
        part = wanted[start:start + CHANGE_READS_AT_ONCE]
        changed = await asyncio.gather(*(messages.changed_since(c.conversation_id, since, seq) for c, seq in part))
        for (conversation, _), messages_changed in zip(part, changed, strict=True):
            for message in messages_changed:
                if not conversation.sees(user_id, message) or user_id in message.hidden_for:
                    continue
                cid, mid = message.conversation_id, message.message_id
                if message.recalled:
                    pushes.append(push("message.recalled", MessageRecalledPush(conversation_id=cid, message_id=mid)))
                elif message.burned or (message.burns_at is not None and message.burns_at <= now):
                    pushes.append(push("message.burned", MessageGonePush(conversation_id=cid, message_id=mid)))
                elif not message.is_expired(now):
                    pushes.append(push("message.changed", message.to_contract(user_id)))
    return pushes


def message_new(message: Message, *, sealed: bool = False) -> Push:
    """The `message.new` push of a stored message, its data built as JSON directly (the message
    came from the store or was just validated at the edge: no model to check it again)."""
    return Push(type="message.new", data=message.contract_json(sealed=sealed))
