"""Small pieces the unit tests share: real Redis under a test's own key prefix, the ports chat
delivers and publishes through (recorded), the services it asks (answered by the test).

Nothing here mocks a store or the broker: `Outbox` *is* the `publish` port of `Deliverer`
(what chat hands to RabbitMQ), recorded so a test can read what each gateway would get.
"""
import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel

from shared.contracts.auth import UserProfile
from shared.contracts.batches import Deliveries
from shared.contracts.files import FileMeta
from shared.contracts.images import ImageInfo
from shared.contracts.operations import Operation
from shared.contracts.wire import Caller, Command, Delivery
from shared.declared import Service
from shared.ids import new_id
from shared.settings import Settings
from shared.redis_slots import RedisClient
from shared.stores import redis_client

@asynccontextmanager
async def redis_namespace(settings: Settings) -> AsyncIterator[tuple[RedisClient, str]]:
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


class StaticDeviceKeys:
    """The `DeviceKeys` port (auth's key directory) over the devices the test says published keys."""

    def __init__(self) -> None:
        self.published: dict[str, set[str]] = {}

    def publish(self, user_id: str, *device_ids: str) -> None:
        self.published.setdefault(user_id, set()).update(device_ids)

    async def published_devices(self, user_ids: list[str]) -> set[tuple[str, str]]:
        return {(u, d) for u in user_ids for d in self.published.get(u, ())}


class StaticProfiles:
    """The `Profiles` port over profiles made by the test."""

    def __init__(self, *profiles: UserProfile):
        self.by_id = {p.user_id: p for p in profiles}

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]:
        return {u: self.by_id[u] for u in user_ids if u in self.by_id}


def profile(user_id: str, display_name: str | None = None) -> UserProfile:
    return UserProfile(user_id=user_id, username=user_id.lower(), display_name=display_name or user_id.title())


class InProcessRpc:
    """`RpcClient.call` answered by a service built in this process, through its router as the
    runner does for a command from RabbitMQ: a service's remote port over another's real handlers."""

    def __init__(self, service: Service):
        self.router = service.router()

    async def call(self, op: Operation[Any, Any], request: Any, caller: Caller | None = None) -> Any:
        command = Command(caller=caller or Caller(request_id=new_id("r")), data=request.model_dump(mode="json", exclude_none=True))
        return await self.router.dispatch(op.routing_key, command)
