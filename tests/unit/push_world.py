"""The world the push service's unit tests run in: `PushService` built as its runner builds it
(its stores on a fresh database, its state and presence on real Redis under the test's own
prefix) beside chat's world and calls, whose events it is told as its consumer takes them off
`<ns>.events`. What crosses to a push platform is recorded by `RecordingProvider`, a Provider
(services/push/domain/ports.py) that answers what the test tells it to.
"""
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel

from services.calls.remote import ChatOverRpc
from services.calls.service import CallsService
from services.push.domain.ports import Outgoing, Sent
from services.push.service import PushService
from shared import declared
from shared.contracts.operations import EVENTS
from shared.contracts.push import Notification, ProviderKind
from shared.declared import Runtime
from shared.delivery import Deliverer
from shared.settings import Settings
from tests.unit.helpers import InProcessRpc, StaticProfiles, profile
from tests.unit.world import ChatWorld, caller, chat_world


def browser_keys() -> dict[str, str]:
    """What a browser's PushSubscription carries: its P-256 public key and a 16-byte secret."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"p256dh": _b64url(point), "auth": _b64url(os.urandom(16))}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class RecordingProvider:
    """A push platform that records every attempt and answers `Sent("sent")`, or the answers a
    test queued (`answers`), in order."""

    def __init__(self, kind: ProviderKind = "webpush"):
        self.kind = kind
        self.attempts: list[Outgoing] = []
        self.answers: list[Sent] = []

    async def send(self, outgoing: Outgoing) -> Sent:
        self.attempts.append(outgoing)
        return self.answers.pop(0) if self.answers else Sent("sent", 201)

    async def close(self) -> None:
        pass


class StaticNames:
    """auth's display names, over the profiles chat's world knows."""

    def __init__(self, profiles: StaticProfiles):
        self.profiles = profiles

    async def names(self, user_ids: list[str]) -> dict[str, str]:
        return {u: p.display_name for u, p in (await self.profiles.get(user_ids)).items()}


class PushWorld:
    def __init__(self, chat: ChatWorld, push: PushService, calls: CallsService, providers: dict[str, RecordingProvider]):
        self.chat = chat
        self.push = push
        self.calls = calls
        self.providers = providers
        self.webpush = providers["webpush"]
        self._told = 0

    async def ask(self, user: str, operation: str, device: str = "d1", **fields: Any) -> Any:
        """A push.* operation asked by `user` on `device`, as the gateway relays it."""
        return await declared.ask(self.push, operation, fields, caller(user, device))

    async def ask_calls(self, user: str, device: str, operation: str, data: dict[str, Any]) -> Any:
        """A call.* operation asked of calls by `user` on `device`."""
        return await declared.ask(self.calls, operation, data, caller(user, device))

    async def subscribe(self, user: str, device: str, kind: ProviderKind = "webpush", locale: str = "en") -> None:
        if kind == "webpush":
            fields: dict[str, Any] = {"endpoint": f"https://push.example/{user}/{device}", "keys": browser_keys()}
        else:
            fields = {"token": f"token-{user}-{device}"}
        await self.ask(user, "push.subscribe", device, kind=kind, locale=locale, **fields)

    async def settle(self) -> None:
        """Every event chat and calls published since the last settle, told to the push service
        in order, each handled to its end (as its consumer acks it then)."""
        published = self.chat.events.published
        while self._told < len(published):
            name, event = published[self._told]
            self._told += 1
            await self.tell(name, event)

    async def tell(self, name: str, event: BaseModel) -> None:
        handlers = self.push.router().events
        if name in handlers:
            await handlers[name](EVENTS[name].model_validate(event.model_dump(mode="json")))

    def received(self, user: str, device: str, kind: str | None = None) -> list[Notification]:
        """What a device was sent (every attempt that was answered `sent` or otherwise)."""
        return [
            o.notification for p in self.providers.values() for o in p.attempts
            if (o.subscription.user_id, o.subscription.device_id) == (user, device)
            and (kind is None or o.notification.kind == kind)
        ]

    def attempts(self, user: str, device: str) -> list[Outgoing]:
        return [
            o for p in self.providers.values() for o in p.attempts
            if (o.subscription.user_id, o.subscription.device_id) == (user, device)
        ]


@asynccontextmanager
async def push_world(db: Any, settings: Settings, *users: str, **overrides: Any) -> AsyncIterator[PushWorld]:
    """chat (with `users` known to auth), calls and push over one Redis prefix and database;
    `overrides` are settings (push_max_attempts=...)."""
    async with chat_world(db, settings, *(profile(u) for u in users), **overrides) as chat:
        rt = Runtime(chat.service.settings, db, chat.presence.redis)
        providers = {"webpush": RecordingProvider("webpush"), "fcm": RecordingProvider("fcm")}
        push = await PushService.build(rt, names=StaticNames(chat.profiles), providers=providers)
        calls = await CallsService.build(
            rt, presence=chat.presence, deliver=Deliverer(chat.presence, chat.outbox),
            chat=ChatOverRpc(InProcessRpc(chat.service)), events=chat.events,
        )
        yield PushWorld(chat, push, calls, providers)
