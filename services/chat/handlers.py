"""chat's operations and events but for groups, each mapped to its domain function.

The operation `friends.request` is `friends.request_friendship`, `history.fetch` is
`messaging.fetch_history`, and so on: one hop from the name to the code. (`groups.*` are in
group_handlers.py; service.py puts them together. `call.*` are the calls service's.)
"""
from services.chat.domain import (
    attachments, blocks, call_messages, conversations, device_messages, encryption, friends, interactions, messaging,
    sending,
)
from services.chat.parts import ChatParts
from shared.contracts.auth import ProfileChanged
from shared.contracts.base import Empty, utc_now
from shared.contracts.batches import AckBatch, BatchReply, ItemResult, SendBatch
from shared.contracts.blocks import BlocksList, BlocksListReply, BlockTarget
from shared.contracts.calls import CallMessage, CallPeer, CallPeerAsk
from shared.contracts.chat import (
    DeviceBound,
    FriendsList,
    FriendsListReply,
    FriendTarget,
    HistoryFetch,
    HistoryReply,
    Message,
    PresenceChanged,
)
from shared.contracts.conversations import (
    ConversationEncrypt,
    ConversationEncryptReply,
    ConversationsList,
    ConversationsListReply,
    MessageRead,
    MessageRecall,
    Typing,
)
from shared.contracts.e2e import DevicesAck, DevicesSend, DevicesSendReply, KeysChanged
from shared.contracts.files import FileAccess, FileAccessReply
from shared.contracts.interactions import MessageEdit, MessageEditReply, MessageRef, ReactionChange
from shared.contracts.wire import Caller, device_of, user_of
from shared.declared import event, operation
from shared.service import AnswerFirst


class ChatHandlers(ChatParts):
    # --- friends ---------------------------------------------------------------------------
    @operation("friends.request")
    async def request_friend(self, request: FriendTarget, caller: Caller) -> Empty:
        await friends.request_friendship(user_of(caller), request.user_id, self)
        return Empty()

    @operation("friends.accept")
    async def accept_friend(self, request: FriendTarget, caller: Caller) -> Empty:
        await friends.accept_friendship(user_of(caller), request.user_id, self)
        return Empty()

    @operation("friends.remove")
    async def remove_friend(self, request: FriendTarget, caller: Caller) -> Empty:
        await friends.remove_friendship(user_of(caller), request.user_id, self)
        return Empty()

    @operation("friends.list")
    async def list_friends(self, request: FriendsList, caller: Caller) -> FriendsListReply:
        return await friends.list_friends(user_of(caller), self)

    @event("presence.changed")
    async def presence_changed(self, event: PresenceChanged) -> None:
        await friends.announce_presence(event, self)

    @event("profile.changed")
    async def profile_changed(self, event: ProfileChanged) -> None:
        await friends.announce_profile(event, self)

    # --- blocks --------------------------------------------------------------------------------
    @operation("blocks.add")
    async def block(self, request: BlockTarget, caller: Caller) -> Empty:
        await blocks.block_user(user_of(caller), request.user_id, self)
        return Empty()

    @operation("blocks.remove")
    async def unblock(self, request: BlockTarget, caller: Caller) -> Empty:
        await blocks.unblock_user(user_of(caller), request.user_id, self)
        return Empty()

    @operation("blocks.list")
    async def list_blocked(self, request: BlocksList, caller: Caller) -> BlocksListReply:
        return await blocks.list_blocked(user_of(caller), self)

    # --- sending and acknowledging -----------------------------------------------------------
    @operation("chat.messages.send")
    async def send_batch(self, request: SendBatch, caller: Caller) -> AnswerFirst:
        """Stored, answered, then announced: the senders' answers do not wait for the pushes."""
        outcomes, stored = await sending.send_messages(request.items, self)
        turn = self.announcements.take_turn(s.conversation.conversation_id for s in stored)
        return AnswerFirst(
            BatchReply(results=[ItemResult.of(o) for o in outcomes]),
            then=lambda: turn.run(lambda: sending.announce_stored(stored, self)),
        )

    @operation("chat.messages.ack")
    async def ack_batch(self, request: AckBatch, caller: Caller) -> BatchReply:
        outcomes = await sending.acknowledge_many(request.items, self)
        return BatchReply(results=[ItemResult.of(o) for o in outcomes])

    # --- reading -----------------------------------------------------------------------------
    @operation("history.fetch")
    async def history(self, request: HistoryFetch, caller: Caller) -> HistoryReply:
        return await messaging.fetch_history(request, user_of(caller), self)

    @operation("chat.sync", timeout=300)
    async def sync(self, request: DeviceBound, caller: Caller) -> None:
        await messaging.sync_device(request, self)

    # --- conversations -------------------------------------------------------------------------
    @operation("conversations.list")
    async def list_conversations(self, request: ConversationsList, caller: Caller) -> ConversationsListReply:
        return await conversations.list_conversations(user_of(caller), self)

    @operation("message.read")
    async def read(self, request: MessageRead, caller: Caller) -> Empty:
        await conversations.mark_read(request, user_of(caller), caller.device_id, self)
        return Empty()

    @operation("message.recall")
    async def recall(self, request: MessageRecall, caller: Caller) -> Empty:
        await conversations.recall_message(request, user_of(caller), caller.device_id, self)
        return Empty()

    @operation("typing")
    async def notify_typing(self, request: Typing, caller: Caller) -> Empty:
        await conversations.send_typing(request, user_of(caller), self)
        return Empty()

    # --- after sending: edit, reactions, burn after reading, delete for me --------------------------
    @operation("message.edit")
    async def edit(self, request: MessageEdit, caller: Caller) -> MessageEditReply:
        return await interactions.edit_message(request, user_of(caller), caller.device_id, self)

    @operation("reaction.add")
    async def add_reaction(self, request: ReactionChange, caller: Caller) -> Empty:
        await interactions.change_reaction(request, True, user_of(caller), caller.device_id, self)
        return Empty()

    @operation("reaction.remove")
    async def remove_reaction(self, request: ReactionChange, caller: Caller) -> Empty:
        await interactions.change_reaction(request, False, user_of(caller), caller.device_id, self)
        return Empty()

    @operation("message.open")
    async def open_message(self, request: MessageRef, caller: Caller) -> Message:
        return await interactions.open_message(request.message_id, user_of(caller), caller.device_id, self)

    @operation("message.hide")
    async def hide(self, request: MessageRef, caller: Caller) -> Empty:
        await interactions.hide_message(request.message_id, user_of(caller), caller.device_id, self)
        return Empty()

    # --- end-to-end encryption (docs/security.md) -------------------------------------------------
    @operation("conversations.encrypt")
    async def encrypt(self, request: ConversationEncrypt, caller: Caller) -> ConversationEncryptReply:
        return await encryption.encrypt_conversation(request, user_of(caller), self)

    @event("keys.changed")
    async def keys_changed(self, event: KeysChanged) -> None:
        """Whoever talks with the user hears of it; what waited for a device whose keys are gone
        or replaced can no longer be read by it."""
        if event.change != "added":
            await self.device_messages.drop_device(event.user_id, event.device_id)
        await encryption.announce_keys_changed(event, self)

    @operation("devices.send")
    async def send_to_devices(self, request: DevicesSend, caller: Caller) -> DevicesSendReply:
        return await device_messages.send_to_devices(request, user_of(caller), device_of(caller), utc_now(), self)

    @operation("devices.ack")
    async def acknowledge_device_messages(self, request: DevicesAck, caller: Caller) -> Empty:
        await device_messages.acknowledge(request, user_of(caller), device_of(caller), self)
        return Empty()

    # --- files ---------------------------------------------------------------------------------
    @operation("chat.files.access")
    async def file_access(self, request: FileAccess, caller: Caller) -> FileAccessReply:
        """Asked by files at download time: a recall or a member leaving takes effect at once."""
        allowed = await attachments.may_see_file(request.file_id, request.user_id, self)
        return FileAccessReply(allowed=allowed)

    # --- calls (asked by the calls service: chat owns friendships, conversations, messages) -----
    @operation("chat.calls.peer")
    async def call_peer(self, request: CallPeerAsk, caller: Caller) -> CallPeer:
        return await call_messages.call_peer(request, self)

    @operation("chat.calls.record")
    async def record_call(self, request: CallMessage, caller: Caller) -> AnswerFirst:
        """Stored, answered, then announced like a sent message (in the conversation's order)."""
        reply, stored = await call_messages.store_call_message(request, self)
        turn = self.announcements.take_turn([request.conversation_id])
        return AnswerFirst(reply, then=lambda: turn.run(lambda: sending.announce_stored([stored], self)))
