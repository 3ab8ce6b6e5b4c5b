"""The one world chat's unit tests run in: `ChatService` built as its runner builds it (every store
on a fresh database, presence, typing and leases on real Redis under a key prefix of the test's
own), with what crosses a process boundary recorded or answered by the test: the pushes
(`Outbox`), the domain events (`Events`), auth's profiles and files' metadata. A test asks it the
way a client's command arrives: as a user on a device, through the service's router, validated,
handled, and the work after the reply (the pushes, `messages.stored`) done.

Other services' unit tests build theirs the same way (`build_calls` in test_calls.py).
"""
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from services.chat.service import ChatService
from shared.contracts.auth import UserProfile
from shared.contracts.base import Empty, utc_now
from shared.contracts.batches import BatchReply
from shared.contracts.chat import DeviceBound, MessageSendReply
from shared.contracts.errors import ParleyError
from shared.contracts.operations import EVENTS
from shared.contracts.wire import Caller
from shared.declared import Runtime, ask
from shared.delivery import Deliverer
from shared.ids import new_id
from shared.presence import DeviceSocket, Presence
from shared.settings import Settings
from tests.unit.helpers import Events, Outbox, StaticDeviceKeys, StaticFiles, StaticProfiles, redis_namespace


def caller(user: str | None, device: str = "d1", gateway_id: str = "gw1") -> Caller:
    """Who asks, as the gateway sets it from a bound socket (`None`: no bound socket)."""
    return Caller(request_id=new_id("r"), user_id=user, device_id=device, gateway_id=gateway_id, conn_id=f"c_{device}")


async def refusal(awaitable: Awaitable[Any]) -> ParleyError:
    """The error a step is answered with (the test fails if it succeeds)."""
    try:
        await awaitable
    except ParleyError as error:
        return error
    raise AssertionError("expected a ParleyError, the step succeeded")


class ChatWorld:
    """chat as one replica runs it, asked through its router; its parts are read through it
    (`world.messages`, `world.presence`) to see what the database and Redis hold."""

    def __init__(
        self, service: ChatService, outbox: Outbox, events: Events, profiles: StaticProfiles, files: StaticFiles,
        device_keys: StaticDeviceKeys,
    ):
        self.service = service
        self.outbox = outbox
        self.events = events
        self.profiles = profiles
        self.files = files
        self.device_keys = device_keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)

    # --- asking, as a client's command arrives ---------------------------------------------------
    async def ask(self, user: str | None, operation: str, request: BaseModel | dict[str, Any] | None = None,
                  device: str = "d1", **fields: Any) -> Any:
        """`operation` (a name from shared.contracts.operations) asked by `user` on `device`: the
        reply model, or the ParleyError chat answers with."""
        data = request.model_dump(mode="json", exclude_none=True) if isinstance(request, BaseModel) else dict(request or {})
        data.update(to_jsonable_python(fields))
        return await ask(self.service, operation, data, caller(user, device))

    async def send(self, user: str, to: str | None = None, *, group: str | None = None, device: str = "d1",
                   client_msg_id: str | None = None, **fields: Any) -> MessageSendReply:
        """message.send as the gateway forwards it: one item of `chat.messages.send`; the item's
        error raised as the sender would read it. `to` is a user, `group` a group id."""
        target = {"group_id": group} if group is not None else {"user_id": to}
        request = {"to": target, "client_msg_id": client_msg_id or new_id("c"), **fields}
        [result] = await self.send_items([(user, device, request)])
        if isinstance(result, ParleyError):
            raise result
        return result

    async def send_items(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[MessageSendReply | ParleyError]:
        """One `chat.messages.send` batch of (user, device, message.send's data): each item's
        outcome, in order."""
        batch = {"items": [{"caller": caller(u, d).model_dump(exclude_none=True), "request": to_jsonable_python(r)} for u, d, r in items]}
        reply: BatchReply = await ask(self.service, "chat.messages.send", batch, caller(None))
        return [
            MessageSendReply.model_validate(r.data) if r.ok else ParleyError(r.error.code, r.error.message)  # type: ignore[union-attr]
            for r in reply.results
        ]

    async def ack(self, user: str, conversation_id: str, seq: int, device: str = "d1") -> None:
        """message.ack as the gateway forwards it: one item of `chat.messages.ack`; its error raised."""
        [result] = await self.ack_items([(user, device, conversation_id, seq)])
        if isinstance(result, ParleyError):
            raise result

    async def ack_items(self, acks: list[tuple[str, str, str, int]]) -> list[Empty | ParleyError]:
        """One `chat.messages.ack` batch of (user, device, conversation_id, seq), as the gateway
        passes many devices' acks on together: each item's outcome, in order."""
        items = [{"caller": caller(u, d).model_dump(exclude_none=True), "request": {"conversation_id": c, "seq": s}}
                 for u, d, c, s in acks]
        reply: BatchReply = await ask(self.service, "chat.messages.ack", {"items": items}, caller(None))
        return [Empty() if r.ok else ParleyError(r.error.code, r.error.message) for r in reply.results]  # type: ignore[union-attr]

    async def sync(self, user: str, device: str = "d1", gateway_id: str = "gw1") -> int:
        """What the gateway asks when a device binds: everything above its cursors, pushed; how
        many messages that was (as the device's `sync.done` says)."""
        bound = DeviceBound(user_id=user, device_id=device, gateway_id=gateway_id, conn_id=f"c_{device}")
        await self.ask(None, "chat.sync", bound)
        return int(self.pushes(user, device, "sync.done")[-1]["count"])

    async def tell(self, name: str, event: BaseModel) -> None:
        """A domain event as chat's consumer takes it off `<ns>.events`: validated, then handled."""
        handler = self.service.router().events[name]
        await handler(EVENTS[name].model_validate(event.model_dump(mode="json")))

    async def may_see_file(self, file_id: str, user: str) -> bool:
        """What files asks chat before a download."""
        return bool((await self.ask(None, "chat.files.access", file_id=file_id, user_id=user)).allowed)

    # --- the world around chat -----------------------------------------------------------------
    def know(self, *profiles: UserProfile) -> None:
        """Users auth knows (for the profiles chat asks it for)."""
        self.profiles.by_id.update({p.user_id: p for p in profiles})

    async def online(self, user_id: str, device_id: str = "d1", gateway_id: str = "gw1", conn_id: str | None = None) -> None:
        """A device with a live socket on a gateway (presence as the gateway binds it)."""
        await self.presence.bind(DeviceSocket(user_id, device_id, gateway_id, conn_id or f"c_{device_id}"))

    async def befriend(self, a: str, b: str) -> None:
        """Friends already, without the pushes of becoming friends (the setup, not the test)."""
        assert await self.friendships.add_request(a, b, utc_now())
        assert await self.friendships.accept(a, b, utc_now())

    async def stored_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's document as the database holds it."""
        return await self.conversations.collection.find_one({"_id": conversation_id})

    async def stored_group(self, group_id: str) -> dict[str, Any] | None:
        """The group's conversation document as the database holds it."""
        return await self.conversations.collection.find_one({"group_id": group_id})

    def pushes(self, user: str, device: str = "d1", event: str | None = None) -> list[dict[str, Any]]:
        """The pushes' data one device got, in order (of one type, if `event` is given)."""
        return [p["data"] for p in self.outbox.received_by(user, device) if event is None or p["type"] == event]

    def push_types(self, user: str, device: str = "d1") -> list[str]:
        return [p["type"] for p in self.outbox.received_by(user, device)]


@asynccontextmanager
async def chat_world(db: Any, settings: Settings, *profiles: UserProfile, files: StaticFiles | None = None,
                     **overrides: Any) -> AsyncIterator[ChatWorld]:
    """chat on `db` and a Redis namespace of its own; `files` answers for the files service (a
    StaticFiles, or one that knows more); `overrides` are settings (edit_window_seconds=…)."""
    async with redis_namespace(settings) as (redis, namespace):
        own = settings.model_copy(update={"namespace": namespace, **overrides})
        outbox, events, known, keys = Outbox(), Events(), StaticProfiles(*profiles), StaticDeviceKeys()
        files = files if files is not None else StaticFiles()
        presence = Presence(redis, namespace, own.presence_ttl_seconds)
        service = await ChatService.build(
            Runtime(own, db, redis), presence=presence, deliver=Deliverer(presence, outbox), events=events,
            profiles=known, files=files, device_keys=keys,
        )
        try:
            yield ChatWorld(service, outbox, events, known, files, keys)
        finally:
            await service.close()  # positions still in memory are written, as at a process's end
