"""Every operation: its client name, routing key, request and reply models.

This table is the single source the gateway validates frames against and the services bind
their handlers to.
"""
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.contracts import (
    auth, batches, blocks, calls, chat, conversations, e2e, events, files, groups, images, interactions, push,
)
from shared.contracts.base import Contract, Empty

RequestT = TypeVar("RequestT", bound=Contract)
ReplyT = TypeVar("ReplyT", bound=Contract)


@dataclass(frozen=True)
class Operation(Generic[RequestT, ReplyT]):
    """One operation; typed by its request and reply so that `RpcClient.call` returns the reply's
    model (the constants below are what code calls; the table is what frames are checked against)."""

    name: str  # as a client writes it in "type", or the internal name
    service: str  # auth | chat | files | calls | push, or gateway: answered by the gateway itself
    request: type[RequestT]
    reply: type[ReplyT] | None  # None: a one-way command, no reply
    public: bool = True  # clients may send it
    needs_session: bool = True  # only on a bound socket
    # Counts against the user's send rate (PROTOCOL.md: every message.send, valid or not).
    rate_limited: bool = False
    # Goes to one of the service's partition queues, by conversation (shared/partitions.py), not
    # to its service queue: each partition is consumed by one replica at a time.
    partitioned: bool = False

    @property
    def routing_key(self) -> str:
        """`auth.login` stays `auth.login`; `message.send` becomes `chat.message.send`."""
        prefix = f"{self.service}."
        return self.name if self.name.startswith(prefix) else prefix + self.name


# Internal operations that code calls by name (RpcClient.call returns their reply models).
AUTH_USERS_GET = Operation("auth.users.get", "auth", auth.UsersGet, auth.UsersGetReply, public=False)
AUTH_TOKENS_REVOKED = Operation(
    "auth.tokens.revoked", "auth", auth.TokensRevoked, auth.TokensRevokedReply, public=False, needs_session=False
)
CHAT_SYNC: Operation[chat.DeviceBound, Empty] = Operation("chat.sync", "chat", chat.DeviceBound, None, public=False)
# message.send and message.ack as the gateway passes them on: many devices' at once, each batch
# to the partition of its conversations (shared/partitions.py).
CHAT_MESSAGES_SEND = Operation(
    "chat.messages.send", "chat", batches.SendBatch, batches.BatchReply, public=False, partitioned=True
)
CHAT_MESSAGES_ACK = Operation(
    "chat.messages.ack", "chat", batches.AckBatch, batches.BatchReply, public=False, partitioned=True
)
CHAT_FILES_ACCESS = Operation("chat.files.access", "chat", files.FileAccess, files.FileAccessReply, public=False)
# calls asks chat what chat owns: the friendship and direct conversation at invite, and the one
# stored message of an ended call (docs/architecture.md "Calls")
CHAT_CALLS_PEER = Operation("chat.calls.peer", "chat", calls.CallPeerAsk, calls.CallPeer, public=False)
CHAT_CALLS_RECORD = Operation("chat.calls.record", "chat", calls.CallMessage, calls.CallMessageStored, public=False)
# files: the gateway streams bytes over these (HTTP for clients: POST /files, GET /files/{id})
FILES_UPLOAD_BEGIN = Operation("files.upload.begin", "files", files.UploadBegin, files.UploadBeginReply, public=False)
FILES_UPLOAD_CHUNK = Operation("files.upload.chunk", "files", files.UploadChunk, Empty, public=False)
FILES_UPLOAD_FINISH = Operation("files.upload.finish", "files", files.UploadFinish, files.UploadedFile, public=False)
FILES_UPLOAD_ABORT = Operation("files.upload.abort", "files", files.FileRef, Empty, public=False)
FILES_OPEN = Operation("files.open", "files", files.FileRef, files.FileMeta, public=False)
FILES_INFO = Operation("files.info", "files", files.FileRefs, files.FilesInfo, public=False)
FILES_IMAGES_INFO = Operation("files.images.info", "files", images.ImageRefs, images.ImagesInfo, public=False)
FILES_READ = Operation("files.read", "files", files.FileRead, files.FileReadReply, public=False)
# files: images made from uploads (avatars, stickers; thumbnails), docs/protocol.md "Profiles and avatars"
FILES_IMAGES_MAKE = Operation("files.images.make", "files", images.ImageMake, images.ImageInfo, public=False)
IMAGES_AVATAR = Operation("images.avatar", "files", images.AvatarMake, images.ImageInfo)
FILES_IMAGES_OPEN = Operation(
    "files.images.open", "files", images.ImageRef, images.ImageInfo, public=False, needs_session=False
)
FILES_THUMBNAIL_OPEN = Operation("files.thumbnail.open", "files", images.ThumbnailRef, files.FileMeta, public=False)
# chat asks auth which devices of a user have published keys (a to-device message's target).
KEYS_DEVICES = Operation("keys.devices", "auth", e2e.KeysDevices, e2e.KeysDevicesReply)
# The gateway at logout: this device hears nothing more while away (one-way, durable until the
# push service takes it; docs/push.md).
PUSH_DEVICE_LOGGED_OUT: Operation[push.PushUnsubscribe, Empty] = Operation(
    "push.device.logged_out", "push", push.PushUnsubscribe, None, public=False
)

_ALL: list[Operation[Any, Any]] = [
    # session and accounts
    Operation("auth.register", "auth", auth.Register, auth.RegisterReply, needs_session=False),
    Operation("auth.login", "auth", auth.Login, auth.LoginReply, needs_session=False),
    # The gateway verifies tokens itself (signature, expiry, the revocation cache in Redis): no
    # round trip, unless the cache is incomplete (then auth.tokens.revoked).
    Operation("auth.resume", "gateway", auth.Resume, auth.ResumeReply, needs_session=False),
    Operation("ping", "gateway", Empty, Empty, needs_session=False),
    Operation("auth.logout", "auth", auth.Logout, Empty),
    Operation("users.search", "auth", auth.UserSearch, auth.UserSearchReply),
    # profiles and stickers (docs/protocol.md "Profiles and avatars", "Stickers and emoji")
    Operation("profile.get", "auth", auth.ProfileGet, auth.UserProfile),
    Operation("profile.update", "auth", auth.ProfileUpdate, auth.UserProfile),
    Operation("stickers.list", "files", images.StickersList, images.StickersListReply),
    Operation("stickers.add", "files", images.StickerAdd, images.StickerEntry),
    Operation("stickers.remove", "files", images.StickerRef, Empty),
    # friends
    Operation("friends.request", "chat", chat.FriendTarget, Empty),
    Operation("friends.accept", "chat", chat.FriendTarget, Empty),
    Operation("friends.remove", "chat", chat.FriendTarget, Empty),
    Operation("friends.list", "chat", chat.FriendsList, chat.FriendsListReply),
    # blocking (docs/protocol.md "Blocking")
    Operation("blocks.add", "chat", blocks.BlockTarget, Empty),
    Operation("blocks.remove", "chat", blocks.BlockTarget, Empty),
    Operation("blocks.list", "chat", blocks.BlocksList, blocks.BlocksListReply),
    # messages
    Operation("message.send", "chat", chat.MessageSend, chat.MessageSendReply, rate_limited=True),
    Operation("message.ack", "chat", chat.MessageAck, Empty),
    Operation("history.fetch", "chat", chat.HistoryFetch, chat.HistoryReply),
    Operation("message.read", "chat", conversations.MessageRead, Empty),
    Operation("message.recall", "chat", conversations.MessageRecall, Empty),
    Operation("typing", "chat", conversations.Typing, Empty),
    Operation("message.edit", "chat", interactions.MessageEdit, interactions.MessageEditReply),
    Operation("reaction.add", "chat", interactions.ReactionChange, Empty),
    Operation("reaction.remove", "chat", interactions.ReactionChange, Empty),
    Operation("message.open", "chat", interactions.MessageRef, chat.Message),
    Operation("message.hide", "chat", interactions.MessageRef, Empty),
    Operation("conversations.list", "chat", conversations.ConversationsList, conversations.ConversationsListReply),
    # groups
    Operation("groups.create", "chat", groups.GroupCreate, groups.GroupCreateReply),
    Operation("groups.add_members", "chat", groups.GroupAddMembers, Empty),
    Operation("groups.leave", "chat", groups.GroupTarget, Empty),
    Operation("groups.list", "chat", groups.GroupsList, groups.GroupsListReply),
    Operation("groups.members", "chat", groups.GroupTarget, groups.GroupMembersReply),
    Operation("groups.set_role", "chat", groups.GroupSetRole, Empty),
    # group administration (docs/protocol.md "Group administration")
    Operation("groups.info", "chat", groups.GroupTarget, groups.GroupInfo),
    Operation("groups.update", "chat", groups.GroupUpdate, groups.GroupInfo),
    Operation("groups.remove_member", "chat", groups.GroupMemberTarget, Empty),
    Operation("groups.mute", "chat", groups.GroupMute, Empty),
    Operation("groups.transfer_ownership", "chat", groups.GroupMemberTarget, Empty),
    Operation("groups.dissolve", "chat", groups.GroupTarget, Empty),
    Operation("groups.invites.create", "chat", groups.InviteCreate, groups.Invite),
    Operation("groups.invites.list", "chat", groups.GroupTarget, groups.InvitesReply),
    Operation("groups.invites.revoke", "chat", groups.InviteRevoke, Empty),
    Operation("groups.invites.preview", "chat", groups.InviteRef, groups.InvitePreview),
    Operation("groups.join", "chat", groups.InviteRef, groups.GroupJoinReply),
    Operation("groups.join_requests", "chat", groups.GroupTarget, groups.JoinRequestsReply),
    Operation("groups.join_requests.accept", "chat", groups.GroupMemberTarget, Empty),
    Operation("groups.join_requests.decline", "chat", groups.GroupMemberTarget, Empty),
    # calls: signalling routed to the two participants' sockets (docs/protocol.md "Calls")
    Operation("call.invite", "calls", calls.CallInvite, calls.CallInviteReply),
    Operation("call.accept", "calls", calls.CallAccept, Empty),
    Operation("call.decline", "calls", calls.CallTarget, Empty),
    Operation("call.cancel", "calls", calls.CallTarget, Empty),
    Operation("call.hangup", "calls", calls.CallTarget, Empty),
    Operation("call.ice", "calls", calls.CallIce, Empty),
    # STUN/TURN servers with short-lived TURN credentials, made by the gateway from its settings.
    Operation("calls.ice_servers", "gateway", Empty, calls.IceServersReply),
    # offline push (docs/protocol.md "Offline push", docs/push.md)
    Operation("push.config", "push", push.PushConfigAsk, push.PushConfig),
    Operation("push.subscribe", "push", push.PushSubscribe, Empty),
    Operation("push.unsubscribe", "push", push.PushUnsubscribe, Empty),
    Operation("push.preferences.get", "push", push.PushPreferencesAsk, push.PushPreferences),
    Operation("push.preferences.set", "push", push.PushPreferences, push.PushPreferences),
    Operation("push.conversation.set", "push", push.ConversationPushSet, push.ConversationPush),
    Operation("push.conversations.list", "push", push.ConversationPushList, push.ConversationPushListReply),
    # end-to-end encryption (docs/security.md): the key directory (auth), encrypted direct
    # conversations and to-device messages (chat)
    Operation("keys.publish", "auth", e2e.KeysPublish, e2e.KeysPublishReply),
    KEYS_DEVICES,
    Operation("keys.claim", "auth", e2e.KeysClaim, e2e.KeysClaimReply),
    Operation("keys.remove", "auth", e2e.KeysRemove, Empty),
    Operation(
        "conversations.encrypt", "chat", conversations.ConversationEncrypt, conversations.ConversationEncryptReply
    ),
    Operation("devices.send", "chat", e2e.DevicesSend, e2e.DevicesSendReply),
    Operation("devices.ack", "chat", e2e.DevicesAck, Empty),
    # internal
    AUTH_USERS_GET,
    AUTH_TOKENS_REVOKED,
    Operation("auth.health", "auth", Empty, Empty, public=False, needs_session=False),
    Operation("chat.health", "chat", Empty, Empty, public=False, needs_session=False),
    Operation("files.health", "files", Empty, Empty, public=False, needs_session=False),
    Operation("calls.health", "calls", Empty, Empty, public=False, needs_session=False),
    Operation("push.health", "push", Empty, Empty, public=False, needs_session=False),
    CHAT_SYNC,
    CHAT_MESSAGES_SEND,
    CHAT_MESSAGES_ACK,
    CHAT_FILES_ACCESS,
    CHAT_CALLS_PEER,
    CHAT_CALLS_RECORD,
    FILES_UPLOAD_BEGIN,
    FILES_UPLOAD_CHUNK,
    FILES_UPLOAD_FINISH,
    FILES_UPLOAD_ABORT,
    FILES_OPEN,
    FILES_INFO,
    FILES_IMAGES_INFO,
    FILES_READ,
    FILES_IMAGES_MAKE,
    IMAGES_AVATAR,
    FILES_IMAGES_OPEN,
    FILES_THUMBNAIL_OPEN,
    PUSH_DEVICE_LOGGED_OUT,
]

OPERATIONS: dict[str, Operation[Any, Any]] = {op.name: op for op in _ALL}
CLIENT_OPERATIONS: dict[str, Operation[Any, Any]] = {op.name: op for op in _ALL if op.public}
# Every service that takes commands from its own queue (/readyz asks each `<service>.health`).
SERVICES = ("auth", "chat", "files", "calls", "push")

# Pushes a client can receive, by event type.
PUSHES: dict[str, type[Contract]] = {
    "message.new": chat.Message,
    "sync.done": chat.SyncDone,
    "friend.request": chat.FriendRequestPush,
    "friend.accepted": chat.FriendRequestPush,
    "presence": chat.PresencePush,
    "profile.updated": chat.ProfileUpdatedPush,
    "receipt.read": conversations.ReceiptReadPush,
    "message.recalled": conversations.MessageRecalledPush,
    # A message seen before changed while this device was away (sent during sync): the whole
    # message as it is now (edited text, reactions, burn state).
    "message.changed": chat.Message,
    "message.edited": interactions.MessageEditedPush,
    "message.reactions": interactions.MessageReactionsPush,
    "message.opened": interactions.MessageOpenedPush,
    "message.burned": interactions.MessageGonePush,
    "message.hidden": interactions.MessageGonePush,
    "receipt.delivered": interactions.ReceiptDeliveredPush,
    "typing": conversations.TypingPush,
    "group.added": groups.GroupAddedPush,
    "group.member_joined": groups.GroupMemberPush,
    "group.member_left": groups.GroupMemberLeftPush,
    "group.role_changed": groups.GroupRolePush,
    "group.updated": groups.GroupUpdatedPush,
    "group.removed": groups.GroupRemovedPush,
    "group.member_muted": groups.GroupMemberMutedPush,
    "group.dissolved": groups.GroupDissolvedPush,
    "group.join_requested": groups.GroupJoinRequestedPush,
    "group.join_declined": groups.GroupJoinDeclinedPush,
    "call.incoming": calls.CallIncomingPush,
    "call.accepted": calls.CallAcceptedPush,
    "call.ice": calls.CallIcePush,
    "call.ended": calls.CallEndedPush,
    "keys.changed": e2e.KeysChanged,
    "keys.low": e2e.KeysLowPush,
    "conversation.encrypted": conversations.ConversationEncryptedPush,
    "device.message": e2e.DeviceMessagePush,
}

# Domain events on `parley.events`.
EVENTS: dict[str, type[Contract]] = {
    "presence.changed": chat.PresenceChanged,
    "profile.changed": auth.ProfileChanged,
    "deliveries.lost": chat.DeliveriesLost,
    "messages.stored": events.MessagesStored,
    "message.changed": events.MessageChanged,
    "conversation.read": events.ConversationRead,
    "call.ringing": events.CallRinging,
    "call.answered": events.CallAnswered,
    "call.ended": events.CallEnded,
    # auth: a device's keys were published, replaced or removed; chat tells who talks with them.
    "keys.changed": e2e.KeysChanged,
}
