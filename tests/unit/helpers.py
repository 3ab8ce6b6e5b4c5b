"""Small pieces the unit tests share: real Redis and presence, the delivery port, profiles.

Nothing here mocks a store or the broker: `Outbox` *is* the `publish` port of `Deliverer`
(what chat hands to RabbitMQ), recorded so a test can read what each gateway would get.
"""
import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel

from services.chat.service import ChatService
from shared.delivery import Deliverer
from services.chat.domain import sending
from services.chat.storage.conversations import ConversationStore
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.messages import MessageStore
from services.chat.storage.typing import TypingThrottle
from shared.contracts.auth import UserProfile
from shared.contracts.base import utc_now
from shared.contracts.batches import Deliveries
from shared.contracts.files import FileMeta
from shared.contracts.images import ImageInfo
from shared.contracts.operations import Operation
from shared.contracts.wire import Caller, Command, Delivery
from shared.declared import Runtime, Service
from shared.ids import new_id
from shared.presence import DeviceSocket, Presence
from shared.settings import Settings
from shared.stores import redis_client


@asynccontextmanager
async def redis_namespace(settings: Settings) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A real Redis client and a key prefix of this test alone, inside the run's namespace."""
    redis = redis_client(settings)
    namespace = f"{settings.namespace}:unit{os.urandom(4).hex()}"
    try:
        yield redis, namespace
    finally:
        async for key in redis.scan_iter(f"{namespace}:*"):
            await redis.delete(key)
        await redis.aclose()


async def tick() -> None:
    """Let the wall clock move on, so that times stored to the millisecond (a block, an invite
    link, a sticker) differ: on a fast machine and database two steps can share a millisecond,
    and then an order "by time" is the database's choice, not the order of the steps."""
    await asyncio.sleep(0.005)


class Outbox:
    """The `publish` port: every (gateway_id, Delivery) chat would put on `parley.deliver`
    (those that travelled together in one Deliveries flattened), and each broker message."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Delivery]] = []
        self.messages: list[tuple[str, Delivery | Deliveries]] = []

    async def __call__(self, gateway_id: str, delivery: Delivery | Deliveries) -> None:
        self.messages.append((gateway_id, delivery))
        for one in delivery.items if isinstance(delivery, Deliveries) else [delivery]:
            self.sent.append((gateway_id, one))

    def received_by(self, user_id: str, device_id: str) -> list[dict[str, Any]]:
        """The pushes (as `{"type", "data"}`) addressed to one device, in order."""
        return [
            p.model_dump()
            for _, d in self.sent
            if any(t.user_id == user_id and t.device_id == device_id for t in d.targets)
            for p in d.pushes
        ]

    def of_type(self, event: str) -> list[tuple[str, Delivery]]:
        return [(g, d) for g, d in self.sent if any(p.type == event for p in d.pushes)]

    def clear(self) -> None:
        self.sent.clear()
        self.messages.clear()


class Events:
    """The `DomainEvents` port: every event chat would publish on `<ns>.events`, recorded."""

    def __init__(self) -> None:
        self.published: list[tuple[str, BaseModel]] = []

    async def publish_event(self, name: str, event: BaseModel) -> None:
        self.published.append((name, event))

    def named(self, name: str) -> list[Any]:
        return [e for n, e in self.published if n == name]


class StaticFiles:
    """The `Files` port over file metadata made by the test."""

    def __init__(self, *metas: FileMeta):
        self.by_id = {m.file_id: m for m in metas}

    def add(self, file_id: str, uploader: str, name: str = "photo.png", size: int = 3, content_type: str = "image/png") -> FileMeta:
        meta = FileMeta(
            file_id=file_id, name=name, size=size, content_type=content_type, sha256="0" * 64,
            uploader=uploader, uploaded_at="2026-01-01T00:00:00.000Z",
        )
        self.by_id[file_id] = meta
        return meta

    async def infos(self, file_ids: list[str]) -> dict[str, FileMeta]:
        return {f: self.by_id[f] for f in file_ids if f in self.by_id}

    async def images(self, image_ids: list[str]) -> dict[str, ImageInfo]:
        return {}


class StaticProfiles:
    """The `Profiles` port over profiles made by the test."""

    def __init__(self, *profiles: UserProfile):
        self.by_id = {p.user_id: p for p in profiles}

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]:
        return {u: self.by_id[u] for u in user_ids if u in self.by_id}


def profile(user_id: str, display_name: str | None = None) -> UserProfile:
    return UserProfile(user_id=user_id, username=user_id.lower(), display_name=display_name or user_id.title())


@dataclass
class Chat:
    """chat's stores on a fresh database, presence on real Redis and a recorded delivery port."""

    friendships: FriendshipStore
    conversations: ConversationStore
    messages: MessageStore
    cursors: CursorStore
    presence: Presence
    outbox: Outbox
    deliver: Deliverer
    profiles: StaticProfiles = field(default_factory=StaticProfiles)
    files: StaticFiles = field(default_factory=StaticFiles)
    events: Events = field(default_factory=Events)

    async def online(self, user_id: str, device_id: str = "d1", gateway_id: str = "gw1", conn_id: str = "c1") -> None:
        await self.presence.bind(DeviceSocket(user_id, device_id, gateway_id, conn_id))

    async def befriend(self, a: str, b: str) -> None:
        assert await self.friendships.add_request(a, b, utc_now())
        assert await self.friendships.accept(a, b, utc_now())

    async def stored_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's document as the database holds it."""
        return await self.conversations.collection.find_one({"_id": conversation_id})

    async def stored_group(self, group_id: str) -> dict[str, Any] | None:
        """The group's conversation document as the database holds it."""
        return await self.conversations.collection.find_one({"group_id": group_id})


@asynccontextmanager
async def chat_world(db, settings: Settings, *profiles: UserProfile) -> AsyncIterator[Chat]:
    async with redis_namespace(settings) as (redis, namespace):
        friendships, conversations = FriendshipStore(db), ConversationStore(db)
        messages, cursors = MessageStore(db), CursorStore(db)
        for store in (friendships, conversations, messages, cursors):
            await store.ensure_indexes()
        presence = Presence(redis, namespace, ttl_seconds=30)
        outbox = Outbox()
        yield Chat(
            friendships, conversations, messages, cursors, presence, outbox, Deliverer(presence, outbox),
            StaticProfiles(*profiles),
        )


def typing_throttle(world: Chat, window_ms: int = 1000) -> TypingThrottle:
    """chat's typing throttle on the world's Redis, under its namespace (removed with it)."""
    return TypingThrottle(world.presence.redis, world.presence.ns, window_ms=window_ms)


async def send_batch(world: Chat, items: list[Any]) -> list[Any]:
    """chat.messages.send's work on the world: stored, answered, then announced (pushes into the
    outbox, `messages.stored` into the recorded events)."""
    outcomes, stored = await sending.send_messages(
        items, world.friendships, world.conversations, world.messages, world.files
    )
    await sending.announce_stored(stored, world.deliver, world.events)
    return outcomes


class InProcessRpc:
    """`RpcClient.call` answered by a service built in this process, through its router as the
    runner does for a command from RabbitMQ: a service's remote port over another's real handlers."""

    def __init__(self, service: Service):
        self.router = service.router()

    async def call(self, op: Operation[Any, Any], request: Any, caller: Caller | None = None) -> Any:
        command = Command(caller=caller or Caller(request_id=new_id("r")), data=request.model_dump(mode="json", exclude_none=True))
        return await self.router.dispatch(op.routing_key, command)


async def chat_service(world: Chat, settings: Settings) -> ChatService:
    """chat's service over the world's stores, presence and pushes (what calls asks over RPC)."""
    rt = Runtime(settings, world.conversations.collection.database, world.presence.redis)
    return await ChatService.build(
        rt, friendships=world.friendships, conversations=world.conversations, messages=world.messages,
        cursors=world.cursors, presence=world.presence, deliver=world.deliver, profiles=world.profiles,
        files=world.files, events=world.events,
    )
