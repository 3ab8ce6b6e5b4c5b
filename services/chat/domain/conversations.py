"""The conversations list with unread counts, read receipts, recall and typing."""
from datetime import timedelta

from services.chat.domain.groups import joined_seq
from services.chat.domain.messaging import conversation_up_to, member_conversation, to_message
from services.chat.domain.ports import Deliverer, Profiles, push
from services.chat.storage.cursors import CursorStore
from services.chat.storage.messages import MessageStore
from services.chat.storage.typing import TypingThrottle
from shared.contracts import conversations as contract
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError

RECALL_WINDOW = timedelta(minutes=10)


async def list_conversations(
    user_id: str, messages: MessageStore, cursors: CursorStore, profiles: Profiles
) -> contract.ConversationsListReply:
    """Newest activity first; `unread` counts others' visible messages above the read marker."""
    now = utc_now()
    convs = await messages.conversations_of(user_id)
    read = await cursors.read_positions(user_id)
    peers = {c["_id"]: next((m for m in c["members"] if m != user_id), user_id) for c in convs if c["kind"] == "direct"}
    found = await profiles.get(sorted(set(peers.values())))
    entries = []
    for conv in convs:
        floor = joined_seq(conv, user_id)
        latest = await messages.latest(conv["_id"], floor, now, conv["last_seq"])
        unread = await messages.count_unread(
            conv["_id"], user_id, max(floor, read.get(conv["_id"], 0)), now, conv["last_seq"]
        )
        entries.append(
            (
                conv.get("last_at") or conv["created_at"],
                contract.ConversationEntry(
                    conversation_id=conv["_id"],
                    kind=conv["kind"],
                    peer=found.get(peers[conv["_id"]]) if conv["kind"] == "direct" else None,
                    group=contract.GroupRef(group_id=conv["group_id"], name=conv["name"]) if conv["kind"] == "group" else None,
                    last_seq=conv["last_seq"],
                    last_message=to_message(latest) if latest else None,
                    unread=unread,
                ),
            )
        )
    entries.sort(key=lambda e: e[0], reverse=True)
    return contract.ConversationsListReply(conversations=[entry for _, entry in entries])


async def mark_read(
    request: contract.MessageRead, user_id: str, messages: MessageStore, cursors: CursorStore, deliver: Deliverer
) -> None:
    """Move the user's read marker and tell the other participants (once per advance)."""
    conversation = await conversation_up_to(request.conversation_id, request.seq, user_id, messages)
    if await cursors.mark_read(user_id, request.conversation_id, request.seq):
        receipt = contract.ReceiptReadPush(conversation_id=request.conversation_id, user_id=user_id, seq=request.seq)
        others = [m for m in conversation["members"] if m != user_id]
        await deliver.to_users(others, [push("receipt.read", receipt)])


async def recall_message(
    request: contract.MessageRecall, user_id: str, device_id: str | None, messages: MessageStore, deliver: Deliverer
) -> None:
    """The sender takes a message back within 10 minutes; it disappears from history and sync.
    Members who joined after it never saw it and are not told about it either."""
    message = await messages.message(request.message_id)
    conversation = await messages.conversation(message["conversation_id"]) if message else None
    if message is None or conversation is None or user_id not in conversation["members"]:
        raise ParleyError.not_found("no such message")
    now = utc_now()
    expired = message.get("expires_at") is not None and message["expires_at"] <= now
    if expired or message["seq"] <= joined_seq(conversation, user_id):
        raise ParleyError.not_found("no such message")
    if message["from_user_id"] != user_id:
        raise ParleyError.forbidden("only the sender can recall a message")
    if message.get("recalled"):
        return
    if now - message["sent_at"] > RECALL_WINDOW:
        raise ParleyError.forbidden("a message can be recalled only within 10 minutes of sending")
    await messages.recall(request.message_id, now)
    data = contract.MessageRecalledPush(conversation_id=conversation["_id"], message_id=request.message_id)
    could_see = [m for m in conversation["members"] if joined_seq(conversation, m) < message["seq"]]
    await deliver.to_users(could_see, [push("message.recalled", data)], except_device=(user_id, device_id))


async def send_typing(
    request: contract.Typing, user_id: str, messages: MessageStore, throttle: TypingThrottle, deliver: Deliverer
) -> None:
    """Pushed to the others online, at most once a second per (conversation, user); never stored."""
    conversation = await member_conversation(request.conversation_id, user_id, messages)
    if await throttle.first_in_window(request.conversation_id, user_id):
        data = contract.TypingPush(conversation_id=request.conversation_id, user_id=user_id)
        await deliver.to_users([m for m in conversation["members"] if m != user_id], [push("typing", data)])
