"""Reading messages: membership checks, history, and the sync stream on bind (sending and
acknowledging are services/chat/domain/sending.py)."""
import asyncio

from services.chat.domain.delivery import Deliverer, push
from services.chat.domain.ports import Conversations, Cursors, Messages
from services.chat.domain.records import Conversation
from shared.contracts import chat
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError
from shared.presence import DeviceSocket


async def member_conversation(conversation_id: str, user_id: str, conversations: Conversations) -> Conversation:
    """The conversation, if `user_id` takes part in it; unknown and foreign look the same."""
    conversation = await conversations.conversation(conversation_id)
    if conversation is None or not conversation.has_member(user_id):
        raise ParleyError.forbidden("you are not a participant of this conversation")
    return conversation


async def conversation_up_to(
    conversation_id: str, seq: int, user_id: str, conversations: Conversations, messages: Messages
) -> Conversation:
    """The conversation, if the user is in it and `seq` names a message that exists."""
    conversation = await member_conversation(conversation_id, user_id, conversations)
    if seq > conversation.last_seq:
        # A chat replica that died between storing messages and recording `last_seq` left it
        # behind what is stored (the next send would catch it up): catch it up now, so that a
        # client acking a message it did receive is not told its request is bad.
        last_seq = await messages.catch_up_last_seq(conversation_id)
        if seq > last_seq:
            raise ParleyError.bad_request(f"data.seq: beyond the last message ({last_seq})")
        conversation = conversation.with_last_seq(last_seq)
    return conversation


async def fetch_history(
    request: chat.HistoryFetch, user_id: str, conversations: Conversations, messages: Messages
) -> chat.HistoryReply:
    """A member reads a group from the seq at which they joined."""
    conversation = await member_conversation(request.conversation_id, user_id, conversations)
    found, has_more = await messages.page(
        request.conversation_id, request.before_seq, request.limit, utc_now(), conversation.last_seq,
        floor=conversation.joined_seq(user_id), viewer=user_id,
    )
    return chat.HistoryReply(messages=[m.to_contract(user_id) for m in found], has_more=has_more)


async def sync_device(
    bound: chat.DeviceBound,
    conversations: Conversations,
    messages: Messages,
    cursors: Cursors,
    deliver: Deliverer,
    batch_size: int,
) -> int:
    """Stream a freshly bound socket everything above its device's cursors, then `sync.done`.

    A device seen for the first time starts where the user's most advanced device is.
    """
    now = utc_now()
    sock = DeviceSocket(bound.user_id, bound.device_id, bound.gateway_id, bound.conn_id)
    if await cursors.register_device(bound.user_id, bound.device_id, now):
        await cursors.advance(bound.user_id, bound.device_id, await cursors.highest_of_user(bound.user_id))
    positions = await cursors.of_device(bound.user_id, bound.device_id)
    count = 0
    # Each batch is published while the next is read (in order: one publish out at a time).
    publishing: asyncio.Task[None] | None = None
    try:
        for conversation in await conversations.of_user(bound.user_id):
            cid = conversation.conversation_id
            after = max(positions.get(cid, 0), conversation.joined_seq(bound.user_id))
            while after < conversation.last_seq:
                batch = await messages.above(cid, after, batch_size, now, conversation.last_seq, viewer=bound.user_id)
                if not batch:
                    break
                if publishing is not None:
                    await publishing
                pushes = [push("message.new", m.to_contract(bound.user_id)) for m in batch]
                publishing = asyncio.create_task(deliver.to_socket(sock, pushes, sync=True))
                count += len(batch)
                after = batch[-1].seq
        if publishing is not None:
            await publishing
    finally:
        if publishing is not None and not publishing.done():
            publishing.cancel()
    await deliver.to_socket(sock, [push("sync.done", chat.SyncDone(count=count))], sync=True)
    return count
