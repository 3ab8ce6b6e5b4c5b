"""push: notifications to devices that are away, through their platform's push service
(docs/push.md). It attaches to the events chat and calls publish after what they say is done;
nothing on the send path waits for it.

The service class declares what push is made of (subscriptions and preferences in MongoDB, its
state in Redis, presence, auth's names, the providers by kind) and binds each operation and
event to its domain function (services/push/domain/): `push.subscribe` is
`subscribing.subscribe`, `messages.stored` is `notifying.notify_stored`, and so on.
"""
from collections.abc import Collection
from typing import Any

from services.push.domain import notifying, ringing, subscribing
from services.push.domain.ports import Subscription
from services.push.domain.sending import Sender
from services.push.platforms import build_providers
from services.push.remote import AuthNames, PresenceConnected
from services.push.storage.preferences import MongoPreferenceStore
from services.push.storage.state import RedisPushState
from services.push.storage.subscriptions import MongoSubscriptionStore
from shared.contracts.base import Empty
from shared.contracts.events import (
    CallAnswered, CallEnded, CallRinging, ConversationRead, MessageChanged, MessagesStored,
)
from shared.contracts.push import (
    ConversationPush, ConversationPushList, ConversationPushListReply, ConversationPushSet, ProviderKind,
    PushConfig, PushConfigAsk, PushPreferences, PushPreferencesAsk, PushSubscribe, PushUnsubscribe,
)
from shared.contracts.wire import Caller, device_of, user_of
from shared.declared import Runtime, Service, event, operation, part
from shared.presence import Presence


# What may wait in RabbitMQ for the push service (`<ns>.push.events`), in events and bytes.
EVENTS_WAITING = 100_000
EVENTS_WAITING_BYTES = 256 * 1024 * 1024


def _sender(rt: Runtime, s: "PushService") -> Sender:
    settings = rt.settings
    return Sender(
        s.providers, s.subscriptions, s.state, concurrency=settings.push_concurrency,
        max_attempts=settings.push_max_attempts, timeout_seconds=settings.push_timeout_seconds,
    )


class PushService(Service):
    name = "push"

    subscriptions = part(lambda rt, s: MongoSubscriptionStore(rt.db))
    preferences = part(lambda rt, s: MongoPreferenceStore(rt.db))
    state = part(lambda rt, s: RedisPushState(rt.redis, rt.settings.namespace, rt.settings.push_message_ttl_seconds))
    connected = part(lambda rt, s: PresenceConnected(
        Presence(rt.redis, rt.settings.namespace, rt.settings.presence_ttl_seconds, rt.settings.redis_buckets)
    ))
    names = part(lambda rt, s: AuthNames(rt.rpc()))
    # By kind, those configured (the Web Push provider loads the VAPID key, or makes it on first
    # start: docs/push.md); tests give recording ones.
    providers = part(lambda rt, s: build_providers(rt.settings))
    sender = part(_sender)

    # --- what the domain reads besides the parts -------------------------------------------------
    @property
    def message_ttl(self) -> int:
        return self.settings.push_message_ttl_seconds

    @property
    def call_ttl(self) -> int:
        return self.settings.push_call_ttl_seconds

    @property
    def provider_kinds(self) -> Collection[ProviderKind]:
        return self.providers.keys()

    @property
    def vapid_public_key(self) -> str | None:
        webpush = self.providers.get("webpush")
        key = getattr(webpush, "public_key_b64url", None)
        return key() if callable(key) else None

    def problem_with(self, subscription: Subscription) -> str | None:
        """What the provider of its kind says can never be delivered to (Web Push: an endpoint
        that is not https, keys that are not a P-256 point and a 16-byte secret)."""
        if subscription.kind != "webpush":
            return None
        from services.push.providers.webpush import subscription_problem  # present: the provider runs

        return subscription_problem(subscription.endpoint, subscription.p256dh, subscription.auth)

    def events_queue_arguments(self) -> dict[str, Any]:
        """The events waiting for push are bounded: a notification is worth nothing after its
        TTL, and a push service away for long must not heap up chat's events in RabbitMQ (the
        oldest go first, to the bounded dead letters)."""
        bounds: dict[str, Any] = {
            "x-max-length": EVENTS_WAITING, "x-max-length-bytes": EVENTS_WAITING_BYTES, "x-overflow": "drop-head",
        }
        if self.settings.push_message_ttl_seconds:
            bounds["x-message-ttl"] = self.settings.push_message_ttl_seconds * 1000
        return bounds

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()

    # --- operations ----------------------------------------------------------------------------
    @operation("push.config")
    async def config(self, request: PushConfigAsk, caller: Caller) -> PushConfig:
        return subscribing.config(self)

    @operation("push.subscribe")
    async def subscribe(self, request: PushSubscribe, caller: Caller) -> Empty:
        await subscribing.subscribe(request, user_of(caller), device_of(caller), self)
        return Empty()

    @operation("push.unsubscribe")
    async def unsubscribe(self, request: PushUnsubscribe, caller: Caller) -> Empty:
        await subscribing.unsubscribe(user_of(caller), device_of(caller), self)
        return Empty()

    @operation("push.device.logged_out")
    async def logged_out(self, request: PushUnsubscribe, caller: Caller) -> None:
        """The gateway at logout (one-way): the device's subscription goes with its session."""
        if caller.user_id is not None and caller.device_id is not None:
            await subscribing.unsubscribe(caller.user_id, caller.device_id, self)

    @operation("push.preferences.get")
    async def get_preferences(self, request: PushPreferencesAsk, caller: Caller) -> PushPreferences:
        return await self.preferences.get(user_of(caller))

    @operation("push.preferences.set")
    async def set_preferences(self, request: PushPreferences, caller: Caller) -> PushPreferences:
        return await subscribing.set_preferences(request, user_of(caller), self)

    @operation("push.conversation.set")
    async def set_conversation(self, request: ConversationPushSet, caller: Caller) -> ConversationPush:
        return await subscribing.set_conversation(request, user_of(caller), self)

    @operation("push.conversations.list")
    async def list_conversations(self, request: ConversationPushList, caller: Caller) -> ConversationPushListReply:
        return await subscribing.list_conversations(user_of(caller), self)

    # --- events: acked once their notifications were sent or given up ---------------------------
    @event("messages.stored")
    async def on_stored(self, stored: MessagesStored) -> None:
        await notifying.notify_stored(stored, self)

    @event("message.changed")
    async def on_changed(self, changed: MessageChanged) -> None:
        await notifying.notify_changed(changed, self)

    @event("conversation.read")
    async def on_read(self, read: ConversationRead) -> None:
        await notifying.notify_read(read, self)

    @event("call.ringing")
    async def on_ringing(self, ringing_: CallRinging) -> None:
        await ringing.ring(ringing_, self)

    @event("call.answered")
    async def on_answered(self, answered: CallAnswered) -> None:
        await ringing.stop_ringing(answered, self)

    @event("call.ended")
    async def on_call_ended(self, ended: CallEnded) -> None:
        await ringing.stop_ringing(ended, self)
