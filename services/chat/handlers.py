"""chat's operations and events, each mapped to its domain function."""
from dataclasses import dataclass

from pymongo import AsyncMongoClient

from services.chat.domain import conversations, files, friends, groups, messaging, sending
from services.chat.domain.ports import Deliverer, Files, Profiles
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.messages import MessageStore
from services.chat.storage.typing import TypingThrottle
from shared.contracts import batches, chat
from shared.contracts import conversations as conv
from shared.contracts import files as file
from shared.contracts import groups as group
from shared.contracts.base import Empty
from shared.contracts.errors import ParleyError
from shared.contracts.wire import Caller
from shared.presence import Presence
from shared.service import Router
from shared.stores import mongo_ping


@dataclass
class ChatContext:
    friendships: FriendshipStore
    messages: MessageStore
    cursors: CursorStore
    presence: Presence
    deliver: Deliverer
    profiles: Profiles
    files: Files
    typing: TypingThrottle
    mongo: AsyncMongoClient
    sync_batch_size: int = 500


def _user(caller: Caller) -> str:
    if caller.user_id is None:
        raise ParleyError.unauthorized()
    return caller.user_id


def build_router(ctx: ChatContext) -> Router:
    router = Router("chat")

    @router.operation("friends.request")
    async def request_friend(request: chat.FriendTarget, caller: Caller) -> Empty:
        await friends.request_friendship(_user(caller), request.user_id, ctx.friendships, ctx.profiles, ctx.deliver)
        return Empty()

    @router.operation("friends.accept")
    async def accept_friend(request: chat.FriendTarget, caller: Caller) -> Empty:
        await friends.accept_friendship(_user(caller), request.user_id, ctx.friendships, ctx.profiles, ctx.deliver)
        return Empty()

    @router.operation("friends.remove")
    async def remove_friend(request: chat.FriendTarget, caller: Caller) -> Empty:
        await friends.remove_friendship(_user(caller), request.user_id, ctx.friendships)
        return Empty()

    @router.operation("friends.list")
    async def list_friends(request: chat.FriendsList, caller: Caller) -> chat.FriendsListReply:
        return await friends.list_friends(_user(caller), ctx.friendships, ctx.profiles, ctx.presence)

    @router.operation("message.send")
    async def send(request: chat.MessageSend, caller: Caller) -> chat.MessageSendReply:
        return await sending.send_message(
            request, _user(caller), caller.device_id, ctx.friendships, ctx.messages, ctx.deliver, ctx.files
        )

    @router.operation("message.ack")
    async def ack(request: chat.MessageAck, caller: Caller) -> Empty:
        await sending.acknowledge(request, _user(caller), caller.device_id or "default", ctx.messages, ctx.cursors)
        return Empty()

    @router.operation("chat.messages.send")
    async def send_batch(request: batches.SendBatch, caller: Caller) -> batches.BatchReply:
        outcomes = await sending.send_messages(request.items, ctx.friendships, ctx.messages, ctx.deliver, ctx.files)
        return batches.BatchReply(results=[batches.ItemResult.of(o) for o in outcomes])

    @router.operation("chat.messages.ack")
    async def ack_batch(request: batches.AckBatch, caller: Caller) -> batches.BatchReply:
        outcomes = await sending.acknowledge_many(request.items, ctx.messages, ctx.cursors)
        return batches.BatchReply(results=[batches.ItemResult.of(o) for o in outcomes])

    @router.operation("history.fetch")
    async def history(request: chat.HistoryFetch, caller: Caller) -> chat.HistoryReply:
        return await messaging.fetch_history(request, _user(caller), ctx.messages)

    @router.operation("message.read")
    async def read(request: conv.MessageRead, caller: Caller) -> Empty:
        await conversations.mark_read(request, _user(caller), ctx.messages, ctx.cursors, ctx.deliver)
        return Empty()

    @router.operation("message.recall")
    async def recall(request: conv.MessageRecall, caller: Caller) -> Empty:
        await conversations.recall_message(request, _user(caller), caller.device_id, ctx.messages, ctx.deliver)
        return Empty()

    @router.operation("typing")
    async def typing(request: conv.Typing, caller: Caller) -> Empty:
        await conversations.send_typing(request, _user(caller), ctx.messages, ctx.typing, ctx.deliver)
        return Empty()

    @router.operation("conversations.list")
    async def list_conversations(request: conv.ConversationsList, caller: Caller) -> conv.ConversationsListReply:
        return await conversations.list_conversations(_user(caller), ctx.messages, ctx.cursors, ctx.profiles)

    @router.operation("groups.create")
    async def create_group(request: group.GroupCreate, caller: Caller) -> group.GroupCreateReply:
        return await groups.create_group(request, _user(caller), ctx.messages, ctx.profiles, ctx.deliver)

    @router.operation("groups.add_members")
    async def add_members(request: group.GroupAddMembers, caller: Caller) -> Empty:
        await groups.add_members(request, _user(caller), ctx.messages, ctx.profiles, ctx.deliver)
        return Empty()

    @router.operation("groups.leave")
    async def leave(request: group.GroupTarget, caller: Caller) -> Empty:
        await groups.leave_group(request.group_id, _user(caller), ctx.messages, ctx.deliver)
        return Empty()

    @router.operation("groups.list")
    async def list_groups(request: group.GroupsList, caller: Caller) -> group.GroupsListReply:
        return await groups.list_groups(_user(caller), ctx.messages)

    @router.operation("groups.members")
    async def members(request: group.GroupTarget, caller: Caller) -> group.GroupMembersReply:
        return await groups.list_members(request.group_id, _user(caller), ctx.messages, ctx.profiles)

    @router.operation("groups.set_role")
    async def set_role(request: group.GroupSetRole, caller: Caller) -> Empty:
        await groups.set_role(request, _user(caller), ctx.messages, ctx.deliver)
        return Empty()

    @router.operation("chat.files.access")
    async def file_access(request: file.FileAccess, caller: Caller) -> file.FileAccessReply:
        return file.FileAccessReply(allowed=await files.may_see_file(request.file_id, request.user_id, ctx.messages))

    @router.operation("chat.sync", timeout=300)
    async def sync(request: chat.DeviceBound, caller: Caller) -> None:
        await messaging.sync_device(request, ctx.messages, ctx.cursors, ctx.deliver, ctx.sync_batch_size)

    router.health(lambda: mongo_ping(ctx.mongo))

    @router.event("presence.changed")
    async def presence_changed(event: chat.PresenceChanged) -> None:
        await friends.announce_presence(event, ctx.friendships, ctx.deliver)

    return router
