"""chat's operations and events, each mapped to its domain function.

The operation `friends.request` is `friends.request_friendship`, `groups.create` is
`groups.create_group`, and so on: one hop from the name to the code (the `groups.*` operations
are bound in group_handlers.py).
"""
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from services.chat.domain import (
    attachments,
    blocks,
    calls,
    conversations,
    friends,
    interactions,
    messaging,
    sending,
)
from services.chat.domain.calls import CallPorts
from services.chat.domain.delivery import Deliverer
from services.chat.group_handlers import bind_group_operations
from services.chat.domain.ports import (
    Blocks,
    Conversations,
    Cursors,
    Files,
    Friendships,
    Images,
    Invites,
    JoinRequests,
    Messages,
    Presence,
    Profiles,
    TypingNotices,
)
from shared.contracts.auth import ProfileChanged
from shared.contracts.base import Empty
from shared.contracts.blocks import BlocksList, BlocksListReply, BlockTarget
from shared.contracts.batches import AckBatch, BatchReply, ItemResult, SendBatch
from shared.contracts.calls import CallAccept, CallIce, CallInvite, CallInviteReply, CallTarget
from shared.contracts.chat import (
    DeviceBound,
    FriendsList,
    FriendsListReply,
    FriendTarget,
    HistoryFetch,
    HistoryReply,
    Message,
    MessageAck,
    MessageSend,
    MessageSendReply,
    PresenceChanged,
)
from shared.contracts.conversations import (
    ConversationsList,
    ConversationsListReply,
    MessageRead,
    MessageRecall,
    Typing,
)
from shared.contracts.errors import ParleyError
from shared.contracts.files import FileAccess, FileAccessReply
from shared.contracts.interactions import MessageEdit, MessageEditReply, MessageRef, ReactionChange
from shared.contracts.wire import Caller, user_of
from shared.service import Router


@dataclass
class ChatContext:
    friendships: Friendships
    conversations: Conversations
    messages: Messages
    cursors: Cursors
    presence: Presence
    deliver: Deliverer
    profiles: Profiles
    files: Files
    typing: TypingNotices
    health: Callable[[], Awaitable[None]]  # the database answers
    calls: CallPorts
    blocks: Blocks
    invites: Invites
    join_requests: JoinRequests
    images: Images
    edit_window: timedelta = timedelta(hours=24)
    burn_unopened: timedelta = sending.DEFAULT_BURN_UNOPENED
    sync_batch_size: int = 500


def _device(caller: Caller) -> str:
    if caller.device_id is None:
        raise ParleyError.unauthorized()
    return caller.device_id


def build_router(ctx: ChatContext) -> Router:
    router = Router("chat")

    # --- friends ---------------------------------------------------------------------------
    @router.operation("friends.request")
    async def request_friend(request: FriendTarget, caller: Caller) -> Empty:
        await friends.request_friendship(
            user_of(caller), request.user_id, ctx.friendships, ctx.profiles, ctx.deliver, blocks=ctx.blocks
        )
        return Empty()

    @router.operation("friends.accept")
    async def accept_friend(request: FriendTarget, caller: Caller) -> Empty:
        await friends.accept_friendship(
            user_of(caller), request.user_id, ctx.friendships, ctx.profiles, ctx.deliver, blocks=ctx.blocks
        )
        return Empty()

    @router.operation("friends.remove")
    async def remove_friend(request: FriendTarget, caller: Caller) -> Empty:
        await friends.remove_friendship(user_of(caller), request.user_id, ctx.friendships)
        return Empty()

    @router.operation("friends.list")
    async def list_friends(request: FriendsList, caller: Caller) -> FriendsListReply:
        return await friends.list_friends(user_of(caller), ctx.friendships, ctx.profiles, ctx.presence)

    @router.event("presence.changed")
    async def presence_changed(event: PresenceChanged) -> None:
        await friends.announce_presence(event, ctx.friendships, ctx.deliver)

    @router.event("profile.changed")
    async def profile_changed(event: ProfileChanged) -> None:
        await friends.announce_profile(event, ctx.friendships, ctx.deliver)

    # --- blocks --------------------------------------------------------------------------------
    @router.operation("blocks.add")
    async def block(request: BlockTarget, caller: Caller) -> Empty:
        await blocks.block_user(user_of(caller), request.user_id, ctx.blocks, ctx.friendships, ctx.profiles)
        return Empty()

    @router.operation("blocks.remove")
    async def unblock(request: BlockTarget, caller: Caller) -> Empty:
        await blocks.unblock_user(user_of(caller), request.user_id, ctx.blocks)
        return Empty()

    @router.operation("blocks.list")
    async def list_blocked(request: BlocksList, caller: Caller) -> BlocksListReply:
        return await blocks.list_blocked(user_of(caller), ctx.blocks, ctx.profiles)

    # --- sending and acknowledging -----------------------------------------------------------
    @router.operation("message.send")
    async def send(request: MessageSend, caller: Caller) -> MessageSendReply:
        return await sending.send_message(
            request, user_of(caller), caller.device_id,
            ctx.friendships, ctx.conversations, ctx.messages, ctx.deliver, ctx.files, ctx.burn_unopened,
        )

    @router.operation("message.ack")
    async def ack(request: MessageAck, caller: Caller) -> Empty:
        await sending.acknowledge(
            request, user_of(caller), caller.device_id or "default", ctx.conversations, ctx.messages, ctx.cursors,
            ctx.deliver,
        )
        return Empty()

    @router.operation("chat.messages.send")
    async def send_batch(request: SendBatch, caller: Caller) -> BatchReply:
        outcomes = await sending.send_messages(
            request.items, ctx.friendships, ctx.conversations, ctx.messages, ctx.deliver, ctx.files, ctx.burn_unopened
        )
        return BatchReply(results=[ItemResult.of(o) for o in outcomes])

    @router.operation("chat.messages.ack")
    async def ack_batch(request: AckBatch, caller: Caller) -> BatchReply:
        outcomes = await sending.acknowledge_many(
            request.items, ctx.conversations, ctx.messages, ctx.cursors, ctx.deliver
        )
        return BatchReply(results=[ItemResult.of(o) for o in outcomes])

    # --- reading -----------------------------------------------------------------------------
    @router.operation("history.fetch")
    async def history(request: HistoryFetch, caller: Caller) -> HistoryReply:
        return await messaging.fetch_history(request, user_of(caller), ctx.conversations, ctx.messages, ctx.cursors)

    @router.operation("chat.sync", timeout=300)
    async def sync(request: DeviceBound, caller: Caller) -> None:
        await messaging.sync_device(
            request, ctx.conversations, ctx.messages, ctx.cursors, ctx.deliver, ctx.sync_batch_size
        )

    # --- conversations -------------------------------------------------------------------------
    @router.operation("conversations.list")
    async def list_conversations(request: ConversationsList, caller: Caller) -> ConversationsListReply:
        return await conversations.list_conversations(
            user_of(caller), ctx.conversations, ctx.messages, ctx.cursors, ctx.profiles
        )

    @router.operation("message.read")
    async def read(request: MessageRead, caller: Caller) -> Empty:
        await conversations.mark_read(request, user_of(caller), ctx.conversations, ctx.messages, ctx.cursors, ctx.deliver)
        return Empty()

    @router.operation("message.recall")
    async def recall(request: MessageRecall, caller: Caller) -> Empty:
        await conversations.recall_message(
            request, user_of(caller), caller.device_id, ctx.conversations, ctx.messages, ctx.deliver
        )
        return Empty()

    @router.operation("typing")
    async def typing(request: Typing, caller: Caller) -> Empty:
        await conversations.send_typing(request, user_of(caller), ctx.conversations, ctx.typing, ctx.deliver)
        return Empty()

    # --- after sending: edit, reactions, burn after reading, delete for me --------------------------
    @router.operation("message.edit")
    async def edit(request: MessageEdit, caller: Caller) -> MessageEditReply:
        return await interactions.edit_message(
            request, user_of(caller), caller.device_id, ctx.edit_window, ctx.conversations, ctx.messages, ctx.deliver
        )

    @router.operation("reaction.add")
    async def add_reaction(request: ReactionChange, caller: Caller) -> Empty:
        await interactions.change_reaction(
            request, True, user_of(caller), caller.device_id, ctx.conversations, ctx.messages, ctx.deliver
        )
        return Empty()

    @router.operation("reaction.remove")
    async def remove_reaction(request: ReactionChange, caller: Caller) -> Empty:
        await interactions.change_reaction(
            request, False, user_of(caller), caller.device_id, ctx.conversations, ctx.messages, ctx.deliver
        )
        return Empty()

    @router.operation("message.open")
    async def open_message(request: MessageRef, caller: Caller) -> Message:
        return await interactions.open_message(
            request.message_id, user_of(caller), caller.device_id, ctx.conversations, ctx.messages, ctx.deliver
        )

    @router.operation("message.hide")
    async def hide(request: MessageRef, caller: Caller) -> Empty:
        await interactions.hide_message(
            request.message_id, user_of(caller), caller.device_id, ctx.conversations, ctx.messages, ctx.deliver
        )
        return Empty()

    # --- groups (services/chat/group_handlers.py) ------------------------------------------------
    bind_group_operations(router, ctx)

    # --- calls (signalling; one stored message per call) ---------------------------------------
    @router.operation("call.invite")
    async def invite(request: CallInvite, caller: Caller) -> CallInviteReply:
        return await calls.invite(request, user_of(caller), _device(caller), ctx.calls)

    @router.operation("call.accept")
    async def accept_call(request: CallAccept, caller: Caller) -> Empty:
        await calls.accept(request, user_of(caller), _device(caller), ctx.calls)
        return Empty()

    @router.operation("call.decline")
    async def decline_call(request: CallTarget, caller: Caller) -> Empty:
        await calls.decline(request.call_id, user_of(caller), ctx.calls)
        return Empty()

    @router.operation("call.cancel")
    async def cancel_call(request: CallTarget, caller: Caller) -> Empty:
        await calls.cancel(request.call_id, user_of(caller), ctx.calls)
        return Empty()

    @router.operation("call.hangup")
    async def hang_up(request: CallTarget, caller: Caller) -> Empty:
        await calls.hang_up(request.call_id, user_of(caller), ctx.calls)
        return Empty()

    @router.operation("call.ice")
    async def ice(request: CallIce, caller: Caller) -> Empty:
        await calls.relay_ice(request, user_of(caller), _device(caller), ctx.calls)
        return Empty()

    # --- files ---------------------------------------------------------------------------------
    @router.operation("chat.files.access")
    async def file_access(request: FileAccess, caller: Caller) -> FileAccessReply:
        """Asked by files at download time: a recall or a member leaving takes effect at once."""
        allowed = await attachments.may_see_file(request.file_id, request.user_id, ctx.conversations, ctx.messages)
        return FileAccessReply(allowed=allowed)

    router.health(ctx.health)
    return router
