"""Sending, acknowledging and reading direct messages, and the sync stream on bind."""
import hashlib
from datetime import datetime, timedelta
from typing import Any

from services.chat.domain.groups import joined_seq, member_group
from services.chat.domain.files import file_for_message
from services.chat.domain.ports import Deliverer, Files, push
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.appender import DuplicateClientMessage
from services.chat.storage.messages import MessageStore
from shared.contracts import chat
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ParleyError
from shared.ids import new_id
from shared.presence import DeviceSocket


def direct_conversation_id(a: str, b: str) -> str:
    """The same id for the pair whoever writes first, and opaque to clients."""
    return "d_" + hashlib.sha256("|".join(sorted((a, b))).encode()).hexdigest()[:24]


def to_message(doc: dict[str, Any]) -> chat.Message:
    return chat.Message(
        message_id=doc["_id"],
        conversation_id=doc["conversation_id"],
        seq=doc["seq"],
        from_user_id=doc["from_user_id"],
        to=doc["to"],
        text=doc.get("text"),
        file=doc.get("file"),
        sent_at=iso(doc["sent_at"]),
        expires_at=iso(doc["expires_at"]) if doc.get("expires_at") else None,
    )


def _reply(doc: dict[str, Any]) -> chat.MessageSendReply:
    return chat.MessageSendReply(
        message_id=doc["_id"], conversation_id=doc["conversation_id"], seq=doc["seq"], sent_at=iso(doc["sent_at"])
    )


async def member_conversation(conversation_id: str, user_id: str, messages: MessageStore) -> dict[str, Any]:
    """The conversation, if `user_id` takes part in it; unknown and foreign look the same."""
    conversation = await messages.conversation(conversation_id)
    if conversation is None or user_id not in conversation["members"]:
        raise ParleyError.forbidden("you are not a participant of this conversation")
    return conversation


async def send_message(
    request: chat.MessageSend,
    sender: str,
    sender_device: str | None,
    friendships: FriendshipStore,
    messages: MessageStore,
    deliver: Deliverer,
    files: Files,
) -> chat.MessageSendReply:
    """Store first, answer second, then push to every online device that should see it.

    A retry (same client_msg_id) is recognised by the unique index when it is stored, not by a
    lookup before: one read less per send, and a retry passes the same checks as a first send.
    """
    now = utc_now()
    if request.to.group_id is not None:
        conversation = await member_group(request.to.group_id, sender, messages)
        to = {"group_id": request.to.group_id}
    else:
        conversation = await _direct_conversation(sender, request.to.user_id, friendships, messages, now)
        to = {"user_id": request.to.user_id}
    doc: dict[str, Any] = {
        "_id": new_id("m"),
        "from_user_id": sender,
        "client_msg_id": request.client_msg_id,
        "to": to,
        "sent_at": now,
    }
    if request.text is not None:
        doc["text"] = request.text
    if request.file_id is not None:
        doc["file"] = (await file_for_message(request.file_id, sender, files, messages)).model_dump()
    if request.ttl_seconds is not None:
        doc["expires_at"] = now + timedelta(seconds=request.ttl_seconds)
    try:
        stored = await messages.append(conversation, doc)
    except DuplicateClientMessage as dup:  # a retry, or the same send racing itself
        return await _answer_retry(dup.existing, sender, sender_device, messages, deliver)
    await deliver.to_users(
        conversation["members"], [push("message.new", to_message(stored))], except_device=(sender, sender_device)
    )
    return _reply(stored)


async def _direct_conversation(
    sender: str, recipient: str | None, friendships: FriendshipStore, messages: MessageStore, now: datetime
) -> dict[str, Any]:
    assert recipient is not None
    if recipient == sender:
        raise ParleyError.bad_request("data.to.user_id: you cannot message yourself")
    if not await friendships.are_friends(sender, recipient):
        raise ParleyError.forbidden("direct messages need an accepted friendship")
    return await messages.ensure_direct(direct_conversation_id(sender, recipient), sorted((sender, recipient)), now)


async def _answer_retry(
    earlier: dict[str, Any], sender: str, sender_device: str | None, messages: MessageStore, deliver: Deliverer
) -> chat.MessageSendReply:
    """A send repeated with its client_msg_id: the first reply, and the first message pushed
    again (to its own conversation) in case the first attempt died before pushing, unless it
    was recalled or has expired since."""
    conversation = await messages.conversation(earlier["conversation_id"])
    gone = earlier.get("recalled") or (earlier.get("expires_at") is not None and earlier["expires_at"] <= utc_now())
    if conversation is not None and not gone:
        await deliver.to_users(
            conversation["members"], [push("message.new", to_message(earlier))], except_device=(sender, sender_device)
        )
    return _reply(earlier)


async def conversation_up_to(
    conversation_id: str, seq: int, user_id: str, messages: MessageStore
) -> dict[str, Any]:
    """The conversation, if the user is in it and `seq` names a message that exists."""
    conversation = await member_conversation(conversation_id, user_id, messages)
    if seq > conversation["last_seq"]:
        # A chat replica that died between storing messages and recording `last_seq` left it
        # behind what is stored (the next send would catch it up): catch it up now, so that a
        # client acking a message it did receive is not told its request is bad.
        last_seq = await messages.catch_up_last_seq(conversation_id)
        if seq > last_seq:
            raise ParleyError.bad_request(f"data.seq: beyond the last message ({last_seq})")
        conversation = {**conversation, "last_seq": last_seq}
    return conversation


async def acknowledge(
    request: chat.MessageAck, user_id: str, device_id: str, messages: MessageStore, cursors: CursorStore
) -> None:
    await conversation_up_to(request.conversation_id, request.seq, user_id, messages)
    await cursors.advance(user_id, device_id, {request.conversation_id: request.seq})


async def fetch_history(request: chat.HistoryFetch, user_id: str, messages: MessageStore) -> chat.HistoryReply:
    """A member reads a group from the seq at which they joined."""
    conversation = await member_conversation(request.conversation_id, user_id, messages)
    docs, has_more = await messages.page(
        request.conversation_id, request.before_seq, request.limit, utc_now(), floor=joined_seq(conversation, user_id)
    )
    return chat.HistoryReply(messages=[to_message(d) for d in docs], has_more=has_more)


async def sync_device(
    bound: chat.DeviceBound, messages: MessageStore, cursors: CursorStore, deliver: Deliverer, batch_size: int
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
    for conversation in await messages.conversations_of(bound.user_id):
        after = max(positions.get(conversation["_id"], 0), joined_seq(conversation, bound.user_id))
        while after < conversation["last_seq"]:
            batch = await messages.above(conversation["_id"], after, batch_size, now)
            if not batch:
                break
            await deliver.to_socket(sock, [push("message.new", to_message(d)) for d in batch], sync=True)
            count += len(batch)
            after = batch[-1]["seq"]
    await deliver.to_socket(sock, [push("sync.done", chat.SyncDone(count=count))], sync=True)
    return count
